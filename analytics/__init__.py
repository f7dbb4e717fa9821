"""Cohort analytics in polars: the clinical rules of `domain/`, vectorised over a whole cohort.

facts           the frames every source produces (names, dtypes) and `Facts`
sources         the only I/O: the fact tables (SQLite; PostgreSQL through ADBC), fact files,
                a FHIR bulk export
protocol_table  protocol parameters as a frame, joined onto sessions by protocol
classification  pain response and figures of every session (section 3)
stop_rule       holds, retries and status per patient and protocol as of a date (section 5)
readiness       entry criteria (section 4)
adherence       dosage, sessions per day, extension after flexion, form faults (section 6)
trends          pain per repetition and slope by week since start (section 7)
outcomes        change in general pain and responders (section 7)
cohorts         who is in a cohort: Group, clinic, protocol, start month
report          every section 7 metric and the patient table (the API and the CLI call it)
html            the report as one self-contained HTML page

Every rule module maps LazyFrames to LazyFrames; a parity test (hypothesis) holds them to the
domain's results.
"""
