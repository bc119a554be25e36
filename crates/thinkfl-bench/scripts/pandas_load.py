#!/usr/bin/env python3
"""The same span-file load as `thinkfl bench store`, with pandas read_csv.

Usage: python3 pandas_load.py TRACE_CSV   (prints one JSON object)

Times `pandas.read_csv` of an AIOps 2022 span file (no index is built, unlike the store) and
measures the resident-set growth (VmRSS of /proc/self/status) and the frame's deep memory usage.
"""
import json
import sys
import time


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    path = sys.argv[1]
    import pandas as pd

    dtypes = {
        "timestamp": "int64",
        "cmdb_id": "str",
        "span_id": "str",
        "trace_id": "str",
        "duration": "int64",
        "type": "str",
        "status_code": "str",
        "operation_name": "str",
        "parent_span": "str",
    }
    before = rss_bytes()
    t = time.perf_counter()
    cpu = time.process_time()
    df = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
    secs = time.perf_counter() - t
    cpu = time.process_time() - cpu
    after = rss_bytes()
    n = len(df)
    print(
        json.dumps(
            {
                "spans": n,
                "seconds": secs,
                "cpu_seconds": cpu,
                "spans_per_second": n / secs,
                "rss_bytes_per_span": (after - before) / n,
                "frame_bytes_per_span": int(df.memory_usage(deep=True).sum()) / n,
                "pandas": pd.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
