"""The dashboard's pages: thin Streamlit scripts over dashboard.data (run through dashboard/app.py)."""
