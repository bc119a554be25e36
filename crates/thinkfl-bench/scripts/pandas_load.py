#!/usr/bin/env python3
"""The same span-file load as `thinkfl bench store`, with pandas read_csv (and polars, if installed).

Usage: python3 pandas_load.py TRACE_CSV [SPANS_PARQUET]   (prints one JSON object)

With SPANS_PARQUET (the same spans as `thinkfl export spans` writes them), also times reading that
table with pandas (pyarrow), polars and DuckDB, where installed, and checks the row counts.

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
    out = {
        "spans": n,
        "seconds": secs,
        "cpu_seconds": cpu,
        "spans_per_second": n / secs,
        "rss_bytes_per_span": (after - before) / n,
        "frame_bytes_per_span": int(df.memory_usage(deep=True).sum()) / n,
        "pandas": pd.__version__,
        "polars": polars_load(path),
    }
    del df
    if len(sys.argv) > 2:
        out["parquet"] = parquet_reads(sys.argv[2], n)
    print(json.dumps(out))


def parquet_reads(path, n):
    """Seconds each installed library takes to read the span table into a frame."""
    out = {}

    def timed(name, read):
        try:
            t = time.perf_counter()
            rows = read()
            out[name] = {"seconds": time.perf_counter() - t, "rows": rows, "rows_ok": rows == n}
        except ImportError as e:
            out[name] = {"skipped": str(e)}

    def pandas_read():
        import pandas as pd
        return len(pd.read_parquet(path))

    def polars_read():
        import polars as pl
        return pl.read_parquet(path).height

    def duckdb_read():
        import duckdb
        return len(duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").df())

    timed("pandas", pandas_read)
    timed("polars", polars_read)
    timed("duckdb", duckdb_read)
    return out


def polars_load(path):
    """The same load with polars (all cores), or None when polars is not installed."""
    try:
        import polars as pl
    except ImportError:
        return None
    schema = {
        "timestamp": pl.Int64,
        "cmdb_id": pl.Utf8,
        "span_id": pl.Utf8,
        "trace_id": pl.Utf8,
        "duration": pl.Int64,
        "type": pl.Utf8,
        "status_code": pl.Utf8,
        "operation_name": pl.Utf8,
        "parent_span": pl.Utf8,
    }
    t = time.perf_counter()
    cpu = time.process_time()
    df = pl.read_csv(path, schema=schema)
    secs = time.perf_counter() - t
    cpu = time.process_time() - cpu
    n = df.height
    return {
        "seconds": secs,
        "cpu_seconds": cpu,
        "spans_per_second": n / secs,
        "frame_bytes_per_span": df.estimated_size() / n,
        "version": pl.__version__,
    }


if __name__ == "__main__":
    main()
