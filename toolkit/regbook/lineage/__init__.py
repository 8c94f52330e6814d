"""From a composite ID back to data, code, pipeline run and evaluation, with
``git`` and DVC metadata; and audits of inference logs.
"""
