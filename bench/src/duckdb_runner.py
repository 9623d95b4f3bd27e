# Runs the bench's queries in DuckDB over the same Parquet files fantrace-analyzer reads.
# Input (stdin, JSON): {"files": GLOB, "derived": SQL, "repeat": N, "queries": [{"name", "sql"}]}
# where "derived" lists the decoded columns of fantrace's events view as DuckDB expressions.
# Output (stdout, JSON): {name: {"seconds": [...], "rows": R, "checksum": C}}.
# Times cover the query (execute + fetch, which includes reading the files' footers), not
# Python's or DuckDB's start-up; fantrace's are its own `--timing`, which also leaves out
# process start-up but includes opening and validating every segment.
import json
import sys
import time

import duckdb

spec = json.load(sys.stdin)
con = duckdb.connect()
# A view cannot take a prepared parameter: quote the glob as an SQL string literal.
files = "'" + spec["files"].replace("'", "''") + "'"
con.execute(
    f"CREATE VIEW events AS SELECT * EXCLUDE (syscall), {spec['derived']} "
    f"FROM read_parquet({files}) "
    "WHERE syscall = 'fanotify_mark'"
)
out = {}
for q in spec["queries"]:
    seconds = []
    rows = []
    for _ in range(spec["repeat"] + 1):  # the first run warms the page cache, as for fantrace
        t = time.perf_counter()
        rows = con.execute(q["sql"]).fetchall()
        seconds.append(time.perf_counter() - t)
    checksum = sum(r[-1] for r in rows if isinstance(r[-1], (int, float)))
    out[q["name"]] = {"seconds": seconds[1:], "rows": len(rows), "checksum": checksum}
json.dump(out, sys.stdout)
