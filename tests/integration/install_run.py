#!/usr/bin/python3
"""The installed ipam-syncd with the installed configuration, changed only
to reach the test's PostgreSQL and Kafka: --check-config takes it, the
daemon migrates from the installed schema folder, becomes ready, applies
an event, serves the installed page, and exits 0 on SIGTERM.
   install_run.py INSTALLED_BINARY INSTALLED_CONFIG"""

import json
import os
import re
import subprocess
import sys

binary, installed_config = sys.argv[1], sys.argv[2]
os.environ["IPAM_SYNCD_BIN"] = binary
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (reads IPAM_SYNCD_BIN)
from harness import Daemon, Database, Kafka, Topics, bootstrap, wait_until  # noqa: E402


def adjusted(text, values):
    """The installed file with some keys of some sections replaced."""
    out, section = [], None
    for line in text.splitlines():
        header = re.match(r"^\[(\w+)\]$", line)
        if header:
            section = header.group(1)
        key = re.match(r"^([\w.]+) = ", line)
        if key and (section, key.group(1)) in values:
            line = "%s = %s" % (key.group(1), values.pop((section, key.group(1))))
        out.append(line)
    assert not values, "keys not in the installed file: %r" % values
    return "\n".join(out) + "\n"


def main():
    harness.require_services()
    with open(installed_config) as f:
        text = f.read()
    check = subprocess.run([binary, "--check-config", installed_config],
                           capture_output=True, text=True)
    assert check.returncode == 0, check
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics)
    try:
        with open(daemon.config_path, "w") as f:
            f.write(adjusted(text, {
                ("postgresql", "conninfo"): db.conninfo(),
                ("consumer", "group_id"): daemon.group,
                ("consumer", "topics"): topics.config_value(),
                ("sweeper", "enabled"): "false",
                ("http", "listen"): "127.0.0.1:0",
                ("kafka", "bootstrap.servers"): bootstrap(),
            }))
        daemon.start().wait_ready()
        assert daemon.log_contains(r"applied migration 001_state")
        assert not daemon.log_contains(r"web_dir"), daemon.log()
        kafka = Kafka()
        kafka.send(topics.subnets, "1", json.dumps({
            "specversion": "1.0", "id": "s-1", "source": "/tests/install",
            "type": "ipam.subnet.upserted", "subject": "1",
            "data": {"name": "lan", "cidr": "10.93.0.0/29",
                     "static_ip_pools": ["10.93.0.1-10.93.0.3"]}}))
        kafka.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam") == 3, 60, "3 rows")
        status, page = daemon.http_get("/")
        assert status == 200 and "<html" in page.lower(), (status, page[:200])
        assert daemon.http_get("/readyz")[0] == 200
        assert daemon.stop() == 0
        print("PASS installed daemon: migrated, ready, applied, page served, exit 0")
    finally:
        daemon.close()
        db.close()


if __name__ == "__main__":
    main()
