"""Training engines other than the in-process one: each writes the same registry run.

``recsdk train`` fits plugins in this process by default (:meth:`recsdk.RecSDK.fit`).
``--engine spark`` (:mod:`recsdk.engines.spark`) fits them on a Spark cluster instead,
for event logs beyond one machine, and records a run that serving loads exactly like a
local one. pyspark is imported only when that engine is chosen.
"""
