#!/usr/bin/env python3
"""Parquet span tables and the libraries users read them with (pip install -r requirements.txt).

  span_tables.py fixtures DIR
      Writes DIR/csv/trace/all/trace_jaeger-span.csv (seeded, with the awkward values: empty
      type/status/parent, quoted commas and quotes, non-ASCII) and the same spans as Parquet the
      way others write them: pandas+pyarrow (snappy, nullable, dictionary pages, row groups of
      100), polars (zstd, columns reversed, an extra column, timestamp as a µs Datetime,
      duration as Int32), DuckDB (snappy), and DuckDB with every column as text (which must be
      refused: timestamp is not an integer). thinkfl-store's tests read each back against the
      CSV.

  span_tables.py check TABLE.parquet SPANS.csv
      Reads TABLE (written by `thinkfl export spans`) with pandas, polars and DuckDB and checks
      that each gives the CSV's rows, column for column; prints one JSON object with the time
      each took, exits 1 on a difference.
"""
import json
import os
import random
import sys
import time

COLUMNS = ["timestamp", "cmdb_id", "span_id", "trace_id", "duration", "type",
           "status_code", "operation_name", "parent_span"]
TEXT = {c: "str" for c in COLUMNS if c not in ("timestamp", "duration")}
INTS = {"timestamp": "int64", "duration": "int64"}


def write_csv(path, n=240, seed=17):
    import csv
    rnd = random.Random(seed)
    pods = [f"{s}-{i}" for s in ("frontend", "cartservice", "checkoutservice", "adservice")
            for i in range(2)]
    ops = ["hipstershop.CartService/GetCart", "POST /cart, \"checkout\"", "GET /produkt/ä",
           "db.query", "hipstershop.AdService/GetAds"]
    rows, ids, t = [], [], 1647747340693
    trace = None
    for k in range(n):
        if k % 12 == 0:
            trace = "%032x" % rnd.getrandbits(128)
            ids = []
        sid = "%016x" % rnd.getrandbits(64)
        if not ids:
            parent = ""
        elif rnd.random() < 0.05:
            parent = "%016x" % rnd.getrandbits(64)  # a parent that is not in the data
        else:
            parent = rnd.choice(ids)
        ids.append(sid)
        t += rnd.randrange(0, 40)
        rows.append([t, rnd.choice(pods), sid, trace, rnd.randrange(10, 3_000_000),
                     rnd.choice(["http", "rpc", "db", ""]),
                     rnd.choice(["0", "OK", "200", "500", "Error", ""]),
                     rnd.choice(ops), parent])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(rows)


def fixtures(out):
    import duckdb
    import pandas as pd
    import polars as pl
    csv_path = os.path.join(out, "csv/trace/all/trace_jaeger-span.csv")
    write_csv(csv_path)
    # pandas' defaults: empty cells become NaN, i.e. nulls in the file.
    df = pd.read_csv(csv_path, dtype={**TEXT, **INTS})
    df.to_parquet(os.path.join(out, "pandas-pyarrow.parquet"), engine="pyarrow", index=False,
                  row_group_size=100)
    p = pl.read_csv(csv_path, schema_overrides={c: pl.String for c in TEXT})
    p = p.with_columns(
        pl.from_epoch("timestamp", time_unit="ms").dt.cast_time_unit("us").alias("timestamp"),
        pl.col("duration").cast(pl.Int32),
        pl.lit("ignored").alias("extra"),
    ).select(list(reversed(COLUMNS)) + ["extra"])
    p.write_parquet(os.path.join(out, "polars.parquet"))
    con = duckdb.connect()
    types = ", ".join(f"'{c}': '{'BIGINT' if c in INTS else 'VARCHAR'}'" for c in COLUMNS)
    con.execute(
        f"COPY (SELECT * FROM read_csv('{csv_path}', header=true, types={{{types}}})) "
        f"TO '{os.path.join(out, 'duckdb.parquet')}' (FORMAT parquet)")
    # The same with every column as text: a table the reader must refuse by name.
    con.execute(
        f"COPY (SELECT * FROM read_csv('{csv_path}', header=true, all_varchar=true)) "
        f"TO '{os.path.join(out, 'duckdb-text.parquet')}' (FORMAT parquet)")
    print(json.dumps({"pandas": pd.__version__, "polars": pl.__version__,
                      "duckdb": duckdb.__version__}))


def check(table, csv_path):
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow
    out = {"pandas": pd.__version__, "pyarrow": pyarrow.__version__, "polars": pl.__version__,
           "duckdb": duckdb.__version__}
    want = pd.read_csv(csv_path, dtype={**TEXT, **INTS}, keep_default_na=False)
    out["rows"] = len(want)
    bad = []

    def same(name, df):
        df = df[COLUMNS].reset_index(drop=True)
        for c in COLUMNS:
            a = want[c].tolist()
            b = df[c].tolist()
            if a != b:
                i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y) if len(a) == len(b) else -1
                bad.append(f"{name}: column {c} differs (first at row {i}, len {len(a)} vs {len(b)})")

    t = time.perf_counter()
    df = pd.read_parquet(table)
    out["pandas_seconds"] = time.perf_counter() - t
    same("pandas", df)
    del df
    t = time.perf_counter()
    p = pl.read_parquet(table)
    out["polars_seconds"] = time.perf_counter() - t
    same("polars", p.to_pandas())
    del p
    t = time.perf_counter()
    d = duckdb.connect().execute(f"SELECT * FROM read_parquet('{table}')").df()
    out["duckdb_seconds"] = time.perf_counter() - t
    same("duckdb", d)
    out["differences"] = bad
    print(json.dumps(out))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        fixtures(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
