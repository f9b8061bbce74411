"""The stages, each a description the runner executes (units -> map -> reduce): stream, dedup
(its passes in preprocessing.dedup.near), tokenizer, pack, report, and the pipeline that runs them in order."""
