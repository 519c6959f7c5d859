"""An experiment's results file: its name and its lines, shared by the writer (subscribers.JSONLResultsWriter,
which the run adds on rank 0), the reader (curves.py, what ``modalities plot`` draws) and the experiment folder
(training/experiment.py).

One JSON object per line: a result (``result_record`` of subscribers.py, stamped with ``time`` and
``elapsed_s``), or an event where a run continued in the same file: ``{"event": "resume",
"num_train_steps_done": N, "checkpoint": ...}`` (results after it replace those of steps > N written before it,
by a run that went on past its last checkpoint) or ``{"event": "restart", ...}`` (a fresh start after an attempt
that saved no checkpoint: everything before it is dropped).
"""

RESULTS_FILE = "results.jsonl"
RESUME_EVENT = "resume"
RESTART_EVENT = "restart"
