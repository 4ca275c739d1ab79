"""The floor of bench/run: the minimal durable row changes that a set of
events makes, written with COPY, on the same PostgreSQL.

Given two databases holding the daemon's tables, `before` (the state
before the events) and `after` (the state the daemon left once it had
applied them), the changes are the rows of the entity tables and of the
address table that differ: one write per changed entity and per changed
address, nothing else (no audit, no offsets, no conflicts).  A row counts
as changed only if a column other than its timestamps differs, so an
address that was allocated and freed again within the events, and ends as
it began, is not written at all.  replay() then applies them to `before`
in one transaction: the new rows with COPY straight into their table, the
changed ones with COPY into a temporary table and one UPDATE, the removed
ones with COPY of their keys and one DELETE.  What it times is that
transaction, from BEGIN to the end of COMMIT."""

import os
import tempfile
import time

# The tables whose rows the events change: the entities and the addresses.
TABLES = ("ipam_state.subnet", "ipam_state.server", "ipam_state.mark",
          "ipam_state.address")
# Columns that say when a row was written, not what it holds.
TIMESTAMPS = {"updated_at", "created_at"}


def table_shape(conn, table):
    """(columns in order, positions of the primary key's columns)."""
    with conn.cursor() as cur:
        cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,))
        columns = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                    "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indrelid = %s::regclass AND i.indisprimary", (table,))
        key = [columns.index(r[0]) for r in cur.fetchall()]
    return columns, key


def copy_out(conn, table, path):
    """Writes the table's rows, COPY text format, to a file."""
    with open(path, "w") as f, conn.cursor() as cur:
        cur.copy_expert("COPY %s TO STDOUT" % table, f)


def count(conn, table):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM %s" % table)
        return cur.fetchone()[0]


class Changes:
    """The rows to write per table, each kind kept in a file of COPY lines."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ipam-bench-floor.")
        self.tables = {}    # table -> dict(columns, key, insert, update, delete)

    def path(self, table, kind):
        return os.path.join(self.dir, "%s.%s" % (table, kind))

    def counts(self):
        return {t: {k: v[k + "_rows"] for k in ("insert", "update", "delete")}
                for t, v in self.tables.items()}

    def rows(self):
        return sum(sum(c.values()) for c in self.counts().values())

    def close(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def diff(before, after):
    """The changes that make `before` hold what `after` holds, per table
    of TABLES (both are psycopg2 connections).  A table empty in `before`
    is streamed whole, without holding its rows in memory."""
    changes = Changes()
    for table in TABLES:
        columns, key = table_shape(after, table)
        compared = [i for i, c in enumerate(columns) if c not in TIMESTAMPS]
        entry = dict(columns=columns, key=key, insert_rows=0, update_rows=0,
                     delete_rows=0)
        changes.tables[table] = entry
        inserts = changes.path(table, "insert")
        if count(before, table) == 0:
            copy_out(after, table, inserts)
            with open(inserts) as f:
                entry["insert_rows"] = sum(1 for _ in f)
            continue
        old_path, new_path = changes.path(table, "old"), changes.path(table, "new")
        copy_out(before, table, old_path)
        copy_out(after, table, new_path)

        def keyed(path):
            rows = {}
            with open(path) as f:
                for line in f:
                    fields = line.rstrip("\n").split("\t")
                    rows[tuple(fields[i] for i in key)] = (
                        tuple(fields[i] for i in compared), line)
            return rows
        old = keyed(old_path)
        with open(new_path) as f, open(inserts, "w") as ins, \
                open(changes.path(table, "update"), "w") as upd:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                k = tuple(fields[i] for i in key)
                was = old.pop(k, None)
                if was is None:
                    ins.write(line)
                    entry["insert_rows"] += 1
                elif was[0] != tuple(fields[i] for i in compared):
                    upd.write(line)
                    entry["update_rows"] += 1
        with open(changes.path(table, "delete"), "w") as dele:
            for k in old:
                dele.write("\t".join(k) + "\n")
                entry["delete_rows"] += 1
        os.unlink(old_path)
        os.unlink(new_path)
    return changes


def replay(conn, changes):
    """Applies the changes to the database of conn in one transaction;
    returns its seconds (BEGIN to the end of COMMIT)."""
    conn.autocommit = False
    began = time.monotonic()
    with conn.cursor() as cur:
        for table in TABLES:
            entry = changes.tables[table]
            columns, key = entry["columns"], entry["key"]
            names = ", ".join('"%s"' % c for c in columns)
            match = " AND ".join('t."%s" = s."%s"' % (columns[i], columns[i]) for i in key)
            if entry["delete_rows"]:
                keys = ", ".join('"%s"' % columns[i] for i in key)
                cur.execute("CREATE TEMP TABLE floor_delete ON COMMIT DROP AS "
                            "SELECT %s FROM %s WITH NO DATA" % (keys, table))
                with open(changes.path(table, "delete")) as f:
                    cur.copy_expert("COPY floor_delete FROM STDIN", f)
                cur.execute("DELETE FROM %s t USING floor_delete s WHERE %s" % (table, match))
                cur.execute("DROP TABLE floor_delete")
            if entry["update_rows"]:
                cur.execute("CREATE TEMP TABLE floor_update (LIKE %s) ON COMMIT DROP" % table)
                with open(changes.path(table, "update")) as f:
                    cur.copy_expert("COPY floor_update FROM STDIN", f)
                others = [c for i, c in enumerate(columns) if i not in key]
                cur.execute("UPDATE %s t SET (%s) = (%s) FROM floor_update s WHERE %s" % (
                    table, ", ".join('"%s"' % c for c in others),
                    ", ".join('s."%s"' % c for c in others), match))
                cur.execute("DROP TABLE floor_update")
            if entry["insert_rows"]:
                with open(changes.path(table, "insert")) as f:
                    cur.copy_expert("COPY %s (%s) FROM STDIN" % (table, names), f)
    conn.commit()
    seconds = time.monotonic() - began
    conn.autocommit = True
    return seconds
