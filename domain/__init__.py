"""Pure clinical rules of reptrend: standard library only, no I/O, no clock.

codes          terminology (LOINC, SNOMED CT, UCUM and the local CodeSystems)
protocols      the protocol catalog and `ProtocolParameters` (every number is a parameter)
pain_response  pain per repetition -> `PainResponse` of one session (section 3)
readiness      entry criteria for flexion-in-lying (section 4)
stop_rule      stop, wait one to two weeks, try again: `evaluate_protocol` (section 5)
adherence      dosage, sequence and form flags (section 6)
"""
