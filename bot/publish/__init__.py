"""Edit flow -> Publish: a candidate model is trained, checked and gated, then loaded into every
running Rasa server one at a time, without a restart; each publication is recorded.

- `gate.py`      the decision: is the candidate's opt-out evaluation no worse than the published one?
- `records.py`   the publication log (JSON lines next to the published model files)
- `model_files.py`  a model archive's fingerprint, digest and where published copies go
- `replicas.py`  Rasa's HTTP API: load a model (`PUT /model`), check it (`GET /status`)
- `steps.py`     the checks as subprocesses: validate, train, test stories, evaluate
- `flow.py`      publish and roll back, end to end
"""
