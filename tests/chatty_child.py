"""A stand-in child for tests of training.launch: prints a line every INTERVAL seconds for TOTAL seconds, then
exits 0; with INTERVAL larger than TOTAL it is silent until it exits."""
import os
import sys
import time

interval, total = float(os.environ["CHATTY_INTERVAL"]), float(os.environ["CHATTY_TOTAL"])
start = time.monotonic()
while time.monotonic() - start < total:
    print(f"tick {time.monotonic() - start:.1f} {sys.argv[1]}", flush=True)
    time.sleep(interval)
