"""Leaf records every stage shares: a run's status (:mod:`.run_status`) and the files of its folder
(:mod:`.run_folder`). They import nothing of LayerLab's stages, so the trainer (which sets statuses and writes
checkpoints) and the run store both import them from below (MLflow's ``mlflow/entities`` is the model)."""
