"""The Eng Lead's cutover board (Streamlit); see issue 6."""
