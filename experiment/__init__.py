"""One experiment's life, set up -> propose -> train -> evaluate -> judge -> record, with typed inputs, outcomes and
events. No Prefect here: flows/ hands in the steps that run as Prefect tasks (experiment/steps.py says which)."""
