"""The MLflow mirror: regbook's ledger as the evidence layer over an MLflow Model Registry.

    push(snapshot, "http://mlflow:5000")     # sealed versions -> registered model versions
    check(snapshot, "http://mlflow:5000")    # findings where MLflow drifted from the ledger
    import_versions(ws, "http://mlflow:5000", "credit-risk")   # MLflow versions -> drafts

``remote`` is the one module that talks to MLflow (its client is imported there, lazily:
``pip install 'regbook[mlflow]'``); ``mapping`` says what each sealed version looks like
in MLflow and keeps the record of what was pushed (``mlflow-mirror.json``).
"""
