"""Synthetic clinical vocabulary in English and Malay that the text generators draw from."""

from __future__ import annotations

from dataclasses import dataclass

# (English, Malay) pairs: every fragment exists in both languages so one draw serves either.
Pair = tuple[str, str]


@dataclass(frozen=True)
class Med:
    name: str
    doses: tuple[str, ...]
    frequencies: tuple[str, ...]  # keys of FREQUENCIES
    days: tuple[int, ...]  # 0 means long-term


@dataclass(frozen=True)
class Condition:
    key: str
    keywords: tuple[str, ...]  # words in a prompt that point at this condition
    diagnosis: Pair
    complaints: tuple[Pair, ...]
    negatives: tuple[Pair, ...]  # symptoms a clinician asks about and the patient denies
    exam: tuple[Pair, ...]
    meds: tuple[Med, ...]
    advice: tuple[Pair, ...]
    guideline: tuple[Pair, ...]
    temp: tuple[float, float] = (36.5, 37.2)
    systolic: tuple[int, int] = (110, 135)


FREQUENCIES: dict[str, Pair] = {
    "OD": ("once a day", "sekali sehari"),
    "BD": ("twice a day", "dua kali sehari"),
    "TDS": ("three times a day", "tiga kali sehari"),
    "QID": ("four times a day", "empat kali sehari"),
    "PRN": ("when needed", "apabila perlu"),
    "ON": ("at night", "pada waktu malam"),
}

FEVER: Pair = ("fever", "demam")
CHEST_PAIN: Pair = ("chest pain", "sakit dada")
BREATHLESS: Pair = ("shortness of breath", "sesak nafas")
VOMITING: Pair = ("vomiting", "muntah")

CONDITIONS: tuple[Condition, ...] = (
    Condition(
        key="urti",
        keywords=("urti", "sore throat", "selsema", "flu", "sakit tekak", "runny nose"),
        diagnosis=("Acute upper respiratory tract infection", "Jangkitan saluran pernafasan atas akut"),
        complaints=(
            FEVER,
            ("sore throat", "sakit tekak"),
            ("runny nose", "hidung berair"),
            ("cough", "batuk"),
        ),
        negatives=(BREATHLESS, CHEST_PAIN, ("ear pain", "sakit telinga")),
        exam=(
            ("Throat injected, tonsils not enlarged", "Tekak merah, tonsil tidak bengkak"),
            ("Lungs clear on auscultation", "Paru-paru jelas semasa auskultasi"),
        ),
        meds=(
            Med("Paracetamol", ("500 mg", "1 g"), ("TDS", "QID"), (3, 5)),
            Med("Chlorpheniramine", ("4 mg",), ("TDS", "ON"), (3, 5)),
            Med("Dextromethorphan syrup", ("10 ml", "15 ml"), ("TDS",), (3, 5)),
        ),
        advice=(
            ("Drink plenty of fluids and rest", "Minum air secukupnya dan berehat"),
            ("Gargle with warm salt water", "Berkumur dengan air garam suam"),
        ),
        guideline=(
            (
                "Antibiotics are not routinely recommended for acute URTI in adults",
                "Antibiotik tidak disyorkan secara rutin untuk URTI akut pada orang dewasa",
            ),
            ("Review if fever persists beyond 5 days", "Nilai semula jika demam berterusan melebihi 5 hari"),
        ),
        temp=(37.4, 38.6),
    ),
    Condition(
        key="age",
        keywords=("gastroenteritis", "diarrhoea", "diarrhea", "cirit", "muntah", "loose stool"),
        diagnosis=("Acute gastroenteritis", "Gastroenteritis akut"),
        complaints=(("diarrhoea", "cirit-birit"), VOMITING, ("abdominal cramps", "sakit perut memulas")),
        negatives=(("blood in stool", "darah dalam najis"), ("high fever", "demam tinggi")),
        exam=(
            (
                "Mild dehydration, abdomen soft and non-tender",
                "Dehidrasi ringan, perut lembut dan tidak sakit apabila ditekan",
            ),
            ("Bowel sounds active", "Bunyi usus aktif"),
        ),
        meds=(
            Med("Oral rehydration salts", ("1 sachet",), ("TDS", "PRN"), (2, 3)),
            Med("Domperidone", ("10 mg",), ("TDS",), (2, 3)),
            Med("Hyoscine butylbromide", ("10 mg", "20 mg"), ("TDS",), (3,)),
        ),
        advice=(
            ("Take small frequent sips of fluid", "Minum sedikit demi sedikit tetapi kerap"),
            ("Avoid oily and spicy food", "Elakkan makanan berminyak dan pedas"),
        ),
        guideline=(
            (
                "Oral rehydration is first-line for mild to moderate dehydration",
                "Rehidrasi oral ialah rawatan pertama untuk dehidrasi ringan hingga sederhana",
            ),
            ("Refer if signs of severe dehydration are present", "Rujuk jika terdapat tanda dehidrasi teruk"),
        ),
        temp=(36.8, 37.9),
    ),
    Condition(
        key="htn",
        keywords=("hypertension", "blood pressure", "darah tinggi", "tekanan darah", "htn"),
        diagnosis=("Essential hypertension, suboptimally controlled", "Hipertensi, kawalan kurang memuaskan"),
        complaints=(("headache", "sakit kepala"), ("dizziness", "pening")),
        negatives=(CHEST_PAIN, ("blurred vision", "penglihatan kabur"), BREATHLESS),
        exam=(
            ("Heart sounds dual rhythm, no murmur", "Bunyi jantung normal, tiada murmur"),
            ("No pedal oedema", "Tiada bengkak kaki"),
        ),
        meds=(
            Med("Amlodipine", ("5 mg", "10 mg"), ("OD",), (0,)),
            Med("Perindopril", ("4 mg", "8 mg"), ("OD",), (0,)),
            Med("Hydrochlorothiazide", ("12.5 mg", "25 mg"), ("OD",), (0,)),
        ),
        advice=(
            (
                "Reduce salt intake to less than 5 g a day",
                "Kurangkan pengambilan garam kepada kurang daripada 5 g sehari",
            ),
            ("Exercise at least 150 minutes a week", "Bersenam sekurang-kurangnya 150 minit seminggu"),
        ),
        guideline=(
            (
                "Target blood pressure is below 140/90 mmHg for most adults",
                "Sasaran tekanan darah ialah bawah 140/90 mmHg bagi kebanyakan orang dewasa",
            ),
            (
                "Repeat blood pressure measurement on two separate visits before diagnosis",
                "Ulang bacaan tekanan darah pada dua lawatan berbeza sebelum diagnosis",
            ),
        ),
        systolic=(142, 172),
    ),
    Condition(
        key="t2dm",
        keywords=("diabetes", "kencing manis", "glucose", "gula", "hba1c", "metformin"),
        diagnosis=(
            "Type 2 diabetes mellitus, poorly controlled",
            "Diabetes mellitus jenis 2, kawalan kurang baik",
        ),
        complaints=(
            ("frequent urination", "kerap membuang air kecil"),
            ("thirst", "kerap dahaga"),
            ("tiredness", "letih"),
        ),
        negatives=(("numbness of feet", "kebas kaki"), ("blurred vision", "penglihatan kabur")),
        exam=(
            ("Foot examination normal, pulses palpable", "Pemeriksaan kaki normal, nadi dapat dirasa"),
            ("Capillary glucose 12.4 mmol/L", "Gula kapilari 12.4 mmol/L"),
        ),
        meds=(
            Med("Metformin", ("500 mg", "1 g"), ("BD",), (0,)),
            Med("Gliclazide", ("80 mg", "40 mg"), ("BD", "OD"), (0,)),
        ),
        advice=(
            ("Limit sugary drinks and white rice", "Hadkan minuman manis dan nasi putih"),
            ("Check HbA1c again in 3 months", "Periksa HbA1c semula dalam 3 bulan"),
        ),
        guideline=(
            (
                "Target HbA1c is 7.0% or lower for most adults",
                "Sasaran HbA1c ialah 7.0% atau lebih rendah bagi kebanyakan orang dewasa",
            ),
            ("Screen for retinopathy every year", "Saringan retinopati setiap tahun"),
        ),
    ),
    Condition(
        key="dengue",
        keywords=("dengue", "denggi", "platelet", "ruam"),
        diagnosis=("Suspected dengue fever", "Disyaki demam denggi"),
        complaints=(
            ("high fever", "demam tinggi"),
            ("body aches", "sakit badan"),
            ("pain behind the eyes", "sakit belakang mata"),
            ("rash", "ruam"),
        ),
        negatives=(
            ("bleeding gums", "gusi berdarah"),
            ("abdominal pain", "sakit perut"),
            ("persistent vomiting", "muntah berterusan"),
        ),
        exam=(
            ("Petechial rash over both forearms", "Ruam petechiae pada kedua-dua lengan"),
            ("Platelet count 110 x10^9/L", "Kiraan platelet 110 x10^9/L"),
        ),
        meds=(Med("Paracetamol", ("500 mg", "1 g"), ("QID",), (3,)),),
        advice=(
            ("Avoid NSAIDs such as ibuprofen", "Elakkan ubat NSAID seperti ibuprofen"),
            ("Return immediately if warning signs appear", "Datang segera jika ada tanda amaran"),
        ),
        guideline=(
            (
                "Daily full blood count is recommended from day 3 of fever",
                "Ujian darah penuh harian disyorkan bermula hari ke-3 demam",
            ),
            (
                "Warning signs include abdominal pain and persistent vomiting",
                "Tanda amaran termasuk sakit perut dan muntah berterusan",
            ),
        ),
        temp=(38.2, 39.6),
    ),
    Condition(
        key="asthma",
        keywords=("asthma", "asma", "wheeze", "semput", "inhaler"),
        diagnosis=("Acute exacerbation of bronchial asthma, mild", "Serangan asma akut, ringan"),
        complaints=(
            ("wheezing", "berdehit"),
            ("cough at night", "batuk waktu malam"),
            ("chest tightness", "dada ketat"),
        ),
        negatives=(FEVER, ("difficulty speaking", "sukar bercakap")),
        exam=(
            ("Rhonchi heard over both lungs", "Ronki kedengaran di kedua-dua paru-paru"),
            ("Peak flow 320 L/min", "Aliran puncak 320 L/min"),
        ),
        meds=(
            Med("Salbutamol inhaler", ("200 mcg", "400 mcg"), ("PRN",), (0,)),
            Med("Prednisolone", ("30 mg", "40 mg"), ("OD",), (5,)),
            Med("Budesonide inhaler", ("200 mcg",), ("BD",), (0,)),
        ),
        advice=(
            ("Avoid smoke and dust", "Elakkan asap dan habuk"),
            ("Use the spacer with every puff", "Gunakan spacer setiap kali sedutan"),
        ),
        guideline=(
            (
                "Short-acting beta agonist is given every 20 minutes in the first hour",
                "Agonis beta bertindak pantas diberi setiap 20 minit dalam jam pertama",
            ),
            (
                "Inhaled corticosteroid is the controller of choice",
                "Kortikosteroid sedutan ialah ubat kawalan pilihan",
            ),
        ),
    ),
    Condition(
        key="uti",
        keywords=("uti", "urinary", "kencing", "dysuria", "pedih"),
        diagnosis=("Uncomplicated urinary tract infection", "Jangkitan saluran kencing tanpa komplikasi"),
        complaints=(
            ("burning on urination", "pedih semasa kencing"),
            ("frequent urination", "kerap kencing"),
        ),
        negatives=(("flank pain", "sakit pinggang"), FEVER),
        exam=(
            (
                "Suprapubic tenderness, urine dipstick positive for nitrites",
                "Sakit di bawah perut, ujian air kencing positif nitrit",
            ),
        ),
        meds=(
            Med("Nitrofurantoin", ("50 mg", "100 mg"), ("QID", "BD"), (5, 7)),
            Med("Cefuroxime", ("250 mg",), ("BD",), (5, 7)),
        ),
        advice=(("Drink at least 2 litres of water a day", "Minum sekurang-kurangnya 2 liter air sehari"),),
        guideline=(
            (
                "Nitrofurantoin for 5 days is first-line for uncomplicated cystitis",
                "Nitrofurantoin selama 5 hari ialah rawatan pertama untuk sistitis tanpa komplikasi",
            ),
        ),
    ),
    Condition(
        key="migraine",
        keywords=("migraine", "migrain", "headache", "sakit kepala"),
        diagnosis=("Migraine without aura", "Migrain tanpa aura"),
        complaints=(
            ("throbbing headache", "sakit kepala berdenyut"),
            ("nausea", "loya"),
            ("sensitivity to light", "sensitif kepada cahaya"),
        ),
        negatives=(("weakness of the limbs", "lemah anggota badan"), ("neck stiffness", "leher kaku"), FEVER),
        exam=(("Neurological examination normal", "Pemeriksaan neurologi normal"),),
        meds=(
            Med("Paracetamol", ("1 g",), ("QID", "PRN"), (3,)),
            Med("Naproxen", ("500 mg", "250 mg"), ("BD",), (3,)),
            Med("Metoclopramide", ("10 mg",), ("TDS", "PRN"), (3,)),
        ),
        advice=(
            ("Keep a headache diary", "Simpan diari sakit kepala"),
            ("Sleep regularly and avoid skipping meals", "Tidur secukupnya dan jangan tinggal makan"),
        ),
        guideline=(
            (
                "Simple analgesics are first-line for acute migraine attacks",
                "Analgesik ringkas ialah rawatan pertama untuk serangan migrain akut",
            ),
        ),
    ),
    Condition(
        key="rhinitis",
        keywords=("rhinitis", "sneezing", "bersin", "alahan", "allergy"),
        diagnosis=("Allergic rhinitis", "Rinitis alahan"),
        complaints=(
            ("sneezing", "bersin"),
            ("itchy eyes", "mata gatal"),
            ("blocked nose", "hidung tersumbat"),
        ),
        negatives=(FEVER, ("facial pain", "sakit muka")),
        exam=(("Pale swollen nasal mucosa", "Mukosa hidung pucat dan bengkak"),),
        meds=(
            Med("Loratadine", ("10 mg",), ("OD",), (14, 30)),
            Med("Mometasone nasal spray", ("2 sprays",), ("OD",), (30,)),
        ),
        advice=(("Keep the bedroom free of dust", "Pastikan bilik tidur bebas habuk"),),
        guideline=(
            (
                "Intranasal corticosteroid is the most effective treatment",
                "Kortikosteroid semburan hidung ialah rawatan paling berkesan",
            ),
        ),
    ),
    Condition(
        key="gout",
        keywords=("gout", "uric", "urik", "big toe", "ibu jari kaki"),
        diagnosis=("Acute gouty arthritis", "Serangan gout akut"),
        complaints=(
            ("painful swollen big toe", "ibu jari kaki bengkak dan sakit"),
            ("difficulty walking", "susah berjalan"),
        ),
        negatives=(FEVER, ("recent injury", "kecederaan baru-baru ini")),
        exam=(
            ("Right first toe red, warm and tender", "Ibu jari kaki kanan merah, panas dan sakit"),
            ("Serum uric acid 520 umol/L", "Asid urik serum 520 umol/L"),
        ),
        meds=(
            Med("Colchicine", ("0.5 mg",), ("BD", "TDS"), (3, 5)),
            Med("Diclofenac", ("50 mg",), ("TDS",), (5,)),
        ),
        advice=(("Avoid organ meat and sweet drinks", "Elakkan daging organ dan minuman manis"),),
        guideline=(
            (
                "Do not start urate-lowering therapy during an acute attack",
                "Jangan mulakan ubat penurun asid urik semasa serangan akut",
            ),
        ),
    ),
    Condition(
        key="lbp",
        keywords=("back pain", "sakit belakang", "lumbar", "pinggang"),
        diagnosis=("Mechanical low back pain", "Sakit belakang bawah mekanikal"),
        complaints=(
            ("lower back pain after lifting", "sakit belakang selepas mengangkat barang"),
            ("stiffness in the morning", "kejang pada waktu pagi"),
        ),
        negatives=(("leg numbness", "kebas kaki"), ("urinary problems", "masalah kencing")),
        exam=(
            (
                "Paraspinal muscle tenderness, straight leg raise normal",
                "Otot tepi tulang belakang sakit, ujian angkat kaki lurus normal",
            ),
        ),
        meds=(
            Med("Mefenamic acid", ("500 mg", "250 mg"), ("TDS",), (5,)),
            Med("Orphenadrine", ("35 mg",), ("TDS",), (5,)),
        ),
        advice=(
            ("Stay active and avoid bed rest", "Kekal aktif dan elakkan baring terlalu lama"),
            ("Apply a warm compress", "Tuam dengan kain suam"),
        ),
        guideline=(
            (
                "Imaging is not needed for back pain without red flags",
                "Pengimejan tidak diperlukan untuk sakit belakang tanpa tanda bahaya",
            ),
        ),
    ),
    Condition(
        key="eczema",
        keywords=("eczema", "ekzema", "itchy rash", "gatal", "dermatitis"),
        diagnosis=("Atopic dermatitis flare", "Ekzema atopik berulang"),
        complaints=(("itchy rash", "ruam gatal"), ("dry skin", "kulit kering")),
        negatives=(FEVER, ("pus", "nanah")),
        exam=(("Dry scaly patches on both elbows", "Tompok kering bersisik pada kedua-dua siku"),),
        meds=(
            Med("Hydrocortisone 1% cream", ("a thin layer",), ("BD",), (7,)),
            Med("Cetirizine", ("10 mg",), ("ON",), (7, 14)),
        ),
        advice=(("Use a fragrance-free moisturiser", "Gunakan pelembap tanpa pewangi"),),
        guideline=(
            (
                "Emollients should be used daily even when the skin is clear",
                "Pelembap perlu digunakan setiap hari walaupun kulit sudah pulih",
            ),
        ),
    ),
)

# Single words that a model might say differently without changing the meaning.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "fever": ("pyrexia", "temperature"),
    "pain": ("ache", "discomfort"),
    "reports": ("states", "describes"),
    "advised": ("counselled", "told"),
    "review": ("follow-up", "reassess"),
    "mild": ("slight", "minor"),
    "severe": ("marked", "intense"),
    "likely": ("probable", "possible"),
    "symptoms": ("complaints", "problems"),
    "started": ("commenced", "began"),
    "normal": ("unremarkable", "fine"),
    "examination": ("exam", "assessment"),
    "patient": ("pt", "client"),
    "return": ("come back", "revisit"),
    "take": ("use", "have"),
    "drink": ("consume", "take"),
    "avoid": ("stay away from", "skip"),
    "demam": ("panas badan", "demam panas"),
    "sakit": ("nyeri", "sengal"),
    "ubat": ("ubatan", "medicine"),
    "pening": ("pusing", "pening-pening"),
    "selepas": ("lepas", "sesudah"),
    "rehat": ("berehat", "rest"),
    "teruk": ("serius", "parah"),
    "sedikit": ("sikit", "sedikit sahaja"),
    "doktor": ("doctor", "doc"),
    "makan": ("ambil", "telan"),
    "datang": ("kembali", "mari"),
    "okay": ("ok", "baik"),
    "pesakit": ("patient", "pesakit itu"),
}
