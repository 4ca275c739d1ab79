"""Service operation: sd_notify (READY, STATUS, WATCHDOG, RELOADING,
STOPPING), SIGHUP reload, SIGUSR2, HTTP health and metrics, and a drain in
the middle of a stream."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import psycopg2

import harness
from harness import (Daemon, Database, Kafka, PrivatePostgres, Topics,
                     wait_caught_up, wait_until)


def server_event(sid, ip, version=1):
    return json.dumps({"specversion": "1.0", "id": "e-%s-%d" % (sid, version),
                       "source": "/tests/ops", "type": "ipam.server.upserted",
                       "subject": sid, "entityversion": version,
                       "data": {"hostname": "h" + sid, "ip_address": ip}})


def subnet_event(sid, cidr, pools=()):
    return json.dumps({"specversion": "1.0", "id": "s-" + sid, "source": "/tests/ops",
                       "type": "ipam.subnet.upserted", "subject": sid,
                       "data": {"name": "n" + sid, "cidr": cidr,
                                "static_ip_pools": list(pools)}})


def watchdog_times(daemon):
    return [t for t, m in daemon.notify.timed() if "WATCHDOG=1" in m.split("\n")]


def test_notify_watchdog_status_reload_stopping():
    """READY once up; WATCHDOG=1 at half of WATCHDOG_USEC; STATUS= lines;
    RELOADING=1 with MONOTONIC_USEC then READY=1 around SIGHUP; no watchdog
    ping while an apply is stuck; STOPPING=1 on SIGTERM."""
    db, topics, kafka = Database(), Topics(), Kafka()
    daemon = Daemon(db, topics, notify=True,
                    env={"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": ""}).start()
    try:
        daemon.notify.wait_for("READY=1")
        time.sleep(3.2)
        times = watchdog_times(daemon)
        # Half of WATCHDOG_USEC (1 s): about two pings a second.  The bounds
        # are loose, as these machines are shared and noisy.
        assert 3 <= len(times) <= 10, times
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        assert 0.3 < gaps[len(gaps) // 2] < 0.8, gaps
        wait_until(lambda: any(m.startswith("STATUS=") for m in daemon.notify.texts()),
                   15, "a STATUS= line")
        status = [m for m in daemon.notify.texts() if m.startswith("STATUS=")][-1]
        assert "events applied" in status and "partitions" in status, status

        # SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
        before = len(daemon.notify.texts())
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "READY=1" in daemon.notify.texts()[before:], 10,
                   "READY=1 after the reload")
        after = daemon.notify.texts()[before:]
        reloading = [m for m in after if "RELOADING=1" in m.split("\n")]
        assert reloading, after
        usec = re.search(r"MONOTONIC_USEC=(\d+)", reloading[0])
        assert usec, reloading
        now_usec = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
        assert abs(now_usec - int(usec.group(1))) < 30e6
        assert after.index(reloading[0]) < after.index("READY=1")

        # A stuck apply: no watchdog ping while it lasts.
        daemon.wait_assigned(1)
        kafka.send(topics.subnets, "1", subnet_event("1", "10.40.0.0/24"))
        kafka.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam_state.subnet") == 1,
                   60, "the subnet")
        locker = psycopg2.connect(db.conninfo())
        locker.cursor().execute("LOCK TABLE ipam_state.server IN ACCESS EXCLUSIVE MODE")
        kafka.send(topics.servers, "1", server_event("1", "10.40.0.5"))
        kafka.flush()
        daemon.wait_log(r"watchdog: an apply has run for", 30)
        stalled_at = time.monotonic()
        time.sleep(2.5)
        during = [t for t in watchdog_times(daemon) if t > stalled_at + 0.1]
        assert during == [], during
        locker.rollback()
        locker.close()
        daemon.wait_log(r"watchdog: progress again", 30)
        resumed_at = time.monotonic()
        wait_until(lambda: [t for t in watchdog_times(daemon) if t > resumed_at], 10,
                   "watchdog pings to resume")

        assert daemon.stop() == 0
        texts = daemon.notify.texts()
        assert "STOPPING=1" in texts, texts
    finally:
        daemon.close()
        db.close()


def test_start_waiting_for_a_topic_extends_the_start_timeout():
    """A daemon that waits to be ready (here for a topic that does not
    exist) asks systemd for more start time at the start and every 5 s
    (EXTEND_TIMEOUT_USEC), so that TimeoutStartSec does not kill it while
    its loop runs; once ready it stops asking."""
    db, topics = Database(), Topics()
    missing = Topics()
    missing.formats[harness.unique("absent") + ".servers"] = ("server", "cloudevents")
    daemon = Daemon(db, missing, notify=True).start()
    try:
        wait_until(lambda: daemon.notify.texts().count("EXTEND_TIMEOUT_USEC=20000000") >= 3,
                   20, "three extensions of the start timeout")
        assert "READY=1" not in daemon.notify.texts()
        status, body = daemon.http_get("/readyz")
        assert status == 503 and "does not exist" in body, body
        # A reload before the daemon is first ready says nothing to
        # systemd: READY=1 would end its start.
        reloads = daemon.log().count("reload: configuration")
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: daemon.log().count("reload: configuration") > reloads,
                   30, "the reload")
        texts = daemon.notify.texts()
        assert "READY=1" not in texts, texts
        assert not any("RELOADING=1" in m.split("\n") for m in texts), texts
        assert daemon.stop() == 0
    finally:
        daemon.close()
    ready = Daemon(db, topics, notify=True).start()
    try:
        ready.notify.wait_for("READY=1")
        extended = ready.notify.texts().count("EXTEND_TIMEOUT_USEC=20000000")
        assert extended >= 1, ready.notify.texts()
        time.sleep(6)
        assert ready.notify.texts().count("EXTEND_TIMEOUT_USEC=20000000") == extended
        assert ready.stop() == 0
    finally:
        ready.close()
        db.close()


def test_sighup_reload_valid_and_broken():
    """A valid change takes effect; a restart-only change is named; a broken
    file keeps the running configuration and says why."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics, config={"daemon": {"log_level": "info"}}).start()
    try:
        daemon.wait_ready()
        assert not daemon.log_contains(r"<7>")
        sections = daemon.sections
        sections["daemon"]["log_level"] = "debug"
        sections["consumer"]["group_id"] = "another-group"
        daemon.write_config(sections)
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reload: configuration .* loaded")
        assert daemon.log_contains(r"<4>reload: consumer.group_id changed; it takes "
                                   r"effect after a restart")
        kafka = Kafka()
        kafka.send(topics.subnets, "1", subnet_event("1", "10.41.0.0/24", ["10.41.0.1"]))
        kafka.flush()
        daemon.wait_log(r"<7>batch of 1: 1 applied")   # debug is on now

        with open(daemon.config_path, "a") as f:
            f.write("[daemon]\nlog_level = shouting\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"<3>reload: .*daemon.log_level: \"shouting\" is not one of "
                        r"error, warning, notice, info, debug; keeping the running "
                        r"configuration")
        kafka.send(topics.subnets, "2", subnet_event("2", "10.42.0.0/24", ["10.42.0.1"]))
        kafka.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam") == 2, 30, "second subnet")
        assert daemon.proc.poll() is None

        # A file emptied (truncated while written) is no configuration of
        # defaults: it would turn the sweeper on, among others.
        open(daemon.config_path, "w").close()
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"<3>reload: .* sets no key \(empty\?\); keeping the "
                        r"running configuration")
        kafka.send(topics.subnets, "3", subnet_event("3", "10.43.0.0/24", ["10.43.0.1"]))
        kafka.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam") == 3, 30, "third subnet")
        assert not daemon.log_contains(r"sweeper: sweep"), daemon.log()
        daemon.write_config(sections)
        # SIGUSR2 switches debug logging on, or back to the configured level
        # when that is not debug; here the configured level is debug (the
        # valid reload set it, the broken one kept it): it stays on.
        daemon.signal(signal.SIGUSR2)
        daemon.wait_log(r"SIGUSR2: debug logging on")
        assert not daemon.log_contains(r"SIGUSR2: debug logging off")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_reload_sets_the_reconnect_delays_of_every_connection():
    """[postgresql]'s timeouts reloaded by SIGHUP reach every connection of
    the daemon: the apply's, the API's reads', the retention's."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        ready_at = time.monotonic()
        sections = daemon.sections
        sections["postgresql"]["reconnect_min_ms"] = "1234"
        sections["postgresql"]["reconnect_max_ms"] = "5000"
        daemon.write_config(sections)
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reload: configuration .* loaded")
        names = {r[0] for r in db.query(
            "SELECT application_name FROM pg_stat_activity WHERE datname = %s "
            "AND application_name LIKE 'ipam-syncd%%'", (db.name,))}
        assert {"ipam-syncd", "ipam-syncd api", "ipam-syncd retention"} <= names, names
        # Connections that held (10 s) start the delay over at its minimum.
        time.sleep(max(0.0, 11 - (time.monotonic() - ready_at)))
        mark = len(daemon.log())
        ended = db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = %s AND application_name LIKE 'ipam-syncd%%'",
                          (db.name,))
        wait_until(lambda: len(re.findall(r"retrying in \d+ ms", daemon.log()[mark:]))
                   >= ended, 30, "every connection to retry")
        delays = re.findall(r"retrying in (\d+) ms", daemon.log()[mark:])
        assert set(delays) == {"1234"}, delays
        wait_until(lambda: daemon.http_get("/readyz")[0] == 200, 30, "ready again")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_http_health_metrics_and_promtool():
    """/healthz, /readyz and /metrics under load; the metrics pass promtool
    and their counters move as events are applied."""
    db, topics, kafka = Database(), Topics(partitions=2), Kafka()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        assert daemon.http_get("/healthz") == (200, "ok\n")
        assert daemon.http_get("/nope")[0] == 404
        wait_until(lambda: daemon.http_get("/readyz")[0] == 200, 30, "/readyz ready")
        kafka.send(topics.subnets, "1", subnet_event("1", "10.50.0.0/16"))
        sent = 1

        def load():
            for i in range(2000):
                kafka.send(topics.servers, str(i), server_event(str(i), "10.50.%d.%d"
                                                               % (i // 200, i % 200 + 1)))
            kafka.send(topics.servers, "bad", "not json")
            kafka.flush()

        producer = threading.Thread(target=load)
        producer.start()
        scraped = []
        while producer.is_alive():
            scraped.append(daemon.http_get("/metrics")[1])
            time.sleep(0.05)
        producer.join()
        sent += 2001
        wait_caught_up(db, daemon.group, sent)
        # The figures move when the loop reads the last commit's answer,
        # which may be just after the offsets show in the database.
        text = wait_until(lambda: (lambda t: t if metric_value(
            t, "ipam_syncd_batch_size_events_sum") == sent else None)(scrape(daemon)),
            30, "the last batch counted")
        scraped.append(text)
        for sample in scraped[:3] + scraped[-1:]:
            check = subprocess.run(["promtool", "check", "metrics"], input=sample,
                                   capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr

        def value(text, name, labels=""):
            pattern = r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels))
            match = re.search(pattern, text, re.M)
            assert match, (name, labels)
            return float(match.group(1))

        applied = value(text, "ipam_syncd_messages_total",
                        '{topic="%s",result="applied"}' % topics.servers)
        assert applied == 2000, applied
        assert value(text, "ipam_syncd_messages_total",
                     '{topic="%s",result="dead_letter"}' % topics.servers) == 1
        assert value(text, "ipam_syncd_dead_letters_total") == 1
        assert value(text, "ipam_syncd_rows_changed_total", '{action="insert"}') == 2000
        assert value(text, "ipam_syncd_entity_changes_total",
                     '{entity="server",result="applied"}') == 2000
        assert value(text, "ipam_syncd_database_connected") == 1
        assert value(text, "ipam_syncd_consumer_assigned_partitions") == 6
        assert value(text, "ipam_syncd_apply_duration_seconds_count") >= 1
        assert value(text, "ipam_syncd_batch_size_events_sum") == sent
        for partition in (0, 1):
            assert value(text, "ipam_syncd_consumer_lag_messages",
                         '{topic="%s",partition="%d"}' % (topics.servers, partition)) == 0
        assert 'ipam_syncd_build_info{version="' in text
        assert "process_start_time_seconds" in text
        # Nothing is committed to Kafka (a commit that crosses a rebalance
        # makes librdkafka 2.0.2 drop the assignment): the group has no
        # offsets there; the lag above is the figure to watch.
        from confluent_kafka import Consumer, TopicPartition
        stored = db.query("SELECT topic, partition FROM ipam_state.consumer_offset")
        assert stored
        probe = Consumer({"bootstrap.servers": harness.bootstrap(),
                          "group.id": daemon.group})
        committed = probe.committed([TopicPartition(t, p) for t, p in stored],
                                    timeout=10)
        probe.close()
        assert all(tp.offset < 0 for tp in committed), committed
        assert value(text, "ipam_syncd_kafka_brokers_up") == 1
        assert value(text, "ipam_syncd_kafka_topics_missing") == 0
        assert value(text, "ipam_syncd_consumer_paused") == 0
        assert value(text, "ipam_syncd_consumer_lag_stale") == 0
        # Counters only grow between scrapes.
        earlier = [float(m) for s in scraped[:-1] for m in re.findall(
            r'^ipam_syncd_batches_total (\S+)$', s, re.M)]
        assert earlier == sorted(earlier), earlier
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_readyz_follows_postgresql():
    """/readyz turns unready when PostgreSQL goes away, ready when it returns."""
    pg = PrivatePostgres().start()
    db = Database(host="127.0.0.1", port=pg.port)
    topics = Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        wait_until(lambda: daemon.http_get("/readyz")[0] == 200, 30, "ready")
        pg.stop()
        wait_until(lambda: daemon.http_get("/readyz") ==
                   (503, "PostgreSQL is not connected\n"), 30, "unready")
        assert daemon.http_get("/healthz")[0] == 200
        pg.start()
        wait_until(lambda: daemon.http_get("/readyz")[0] == 200, 30, "ready again")
        status, text = daemon.http_get("/metrics")
        assert re.search(r"^ipam_syncd_database_reconnects_total 1$", text, re.M), text
        assert daemon.stop() == 0
    finally:
        daemon.close()
        pg.close()


def test_sigterm_mid_stream_loses_nothing():
    """SIGTERM in the middle of a stream exits 0 within the bound; after a
    restart every event is applied exactly once."""
    db, topics, kafka = Database(), Topics(partitions=3), Kafka()
    config = {"consumer": {"batch_max_events": "200"},
              "daemon": {"shutdown_timeout_ms": "5000"}}
    daemon = Daemon(db, topics, config=config).start()
    total = 6000
    try:
        daemon.wait_ready()
        kafka.send(topics.subnets, "1", subnet_event("1", "10.60.0.0/16"))
        kafka.flush()

        def produce():
            for i in range(total):
                kafka.send(topics.servers, str(i), server_event(
                    str(i), "10.60.%d.%d" % (i // 250, i % 250 + 1)))
                if i % 500 == 499:
                    kafka.flush()
                    time.sleep(0.25)
            kafka.flush()

        producer = threading.Thread(target=produce)
        producer.start()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam") > 500, 60,
                   "the stream to be flowing")
        began = time.monotonic()
        status = daemon.stop(timeout=20)
        assert status == 0, status
        assert time.monotonic() - began < 6
        applied_at_stop = db.scalar("SELECT count(*) FROM ipam")
        assert applied_at_stop < total, "the stop did not land mid-stream"
        producer.join()
        again = Daemon(db, topics, config=config, group=daemon.group).start()
        wait_caught_up(db, daemon.group, total + 1)
        assert db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'") == total
        assert db.scalar("SELECT count(*) FROM ipamd.audit") == total
        assert db.scalar("SELECT count(DISTINCT (source_topic, source_partition, "
                         "source_offset)) FROM ipamd.audit") == total
        assert again.stop() == 0
        again.close()
    finally:
        daemon.close()
        db.close()


def metric_value(text, name, labels=""):
    """One sample of a scrape, or None when absent."""
    match = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(match.group(1)) if match else None


def scrape(daemon):
    status, text = daemon.http_get("/metrics")
    assert status == 200
    return text


def promtool_metrics(text):
    check = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_metrics_for_alerts_exist_and_move():
    """The figures the alerts use: conflicts now (a conflict appears: 1),
    dead letters kept, the last apply's time (moves with each apply),
    stale events per topic, brokers up, send errors, the retention's and
    the process's figures; every scrape passes promtool."""
    db, topics, kafka = Database(), Topics(), Kafka()
    config = {"consumer": {"batch_max_wait_ms": "20"}}
    daemon = Daemon(db, topics, config=config).start()
    try:
        daemon.wait_ready()
        text = scrape(daemon)
        promtool_metrics(text)
        assert metric_value(text, "ipam_syncd_last_apply_timestamp_seconds") is None
        assert metric_value(text, "ipam_syncd_kafka_brokers_up") == 1
        assert metric_value(text, "ipam_syncd_probe_send_errors_total") == 0
        # The defaults: 90 days; request outcomes kept for ever (0).
        for table, days in (("audit", 90), ("dead_letter", 90), ("request", 0)):
            assert metric_value(text, "ipam_syncd_retention_rows_pruned_total",
                                '{table="%s"}' % table) == 0
            assert metric_value(text, "ipam_syncd_retention_seconds",
                                '{table="%s"}' % table) == days * 86400
        for topic in (topics.servers, topics.subnets, topics.marks):
            assert metric_value(text, "ipam_syncd_stale_events_total",
                                '{topic="%s"}' % topic) == 0, topic
        fds = metric_value(text, "process_open_fds")
        assert 5 <= fds < metric_value(text, "process_max_fds"), fds
        assert metric_value(text, "process_resident_memory_bytes") > 1 << 20
        assert (metric_value(text, "process_virtual_memory_bytes") >=
                metric_value(text, "process_resident_memory_bytes"))
        assert metric_value(text, "process_cpu_seconds_total") >= 0
        with open("/proc/%d/stat" % daemon.proc.pid) as f:
            rss_pages = int(f.read().rsplit(")", 1)[1].split()[21])
        assert abs(metric_value(scrape(daemon), "process_resident_memory_bytes") -
                   rss_pages * os.sysconf("SC_PAGESIZE")) < 64 << 20

        # The figures read from the database: none yet.
        wait_until(lambda: metric_value(scrape(daemon), "ipam_syncd_dead_letters") == 0,
                   60, "the database figures read")
        text = scrape(daemon)
        for kind in ("several_servers", "server_on_reserved", "server_on_quarantine",
                     "pool_shadowed", "duplicate_subnet"):
            assert metric_value(text, "ipam_syncd_conflicts", '{kind="%s"}' % kind) == 0

        # An apply: the last apply time appears, after the event was sent.
        sent_at = time.time()
        kafka.send(topics.subnets, "1", subnet_event("1", "10.80.0.0/16"))
        kafka.flush()
        wait_caught_up(db, daemon.group, 1)
        first = wait_until(lambda: metric_value(
            scrape(daemon), "ipam_syncd_last_apply_timestamp_seconds"), 30, "a last apply")
        assert first >= sent_at - 1, (first, sent_at)
        # A conflict (two servers on one address) and a dead letter.
        kafka.send(topics.servers, "a", server_event("a", "10.80.0.5"))
        kafka.send(topics.servers, "b", server_event("b", "10.80.0.5"))
        kafka.send(topics.servers, "bad", "not json")
        kafka.flush()
        wait_caught_up(db, daemon.group, 4)
        assert db.scalar("SELECT count(*) FROM ipam_conflict") == 1
        wait_until(lambda: metric_value(scrape(daemon), "ipam_syncd_conflicts",
                                        '{kind="several_servers"}') == 1,
                   60, "the conflict counted")
        wait_until(lambda: metric_value(scrape(daemon), "ipam_syncd_dead_letters") == 1,
                   60, "the dead letter counted")
        text = scrape(daemon)
        assert metric_value(text, "ipam_syncd_dead_letters_total") == 1
        second = metric_value(text, "ipam_syncd_last_apply_timestamp_seconds")
        assert second > first, (first, second)
        # A stale event: version 1 after version 2 of the same server.
        kafka.send(topics.servers, "c", server_event("c", "10.80.0.7", version=2))
        kafka.flush()
        kafka.send(topics.servers, "c", server_event("c", "10.80.0.8", version=1))
        kafka.flush()
        wait_caught_up(db, daemon.group, 6)
        wait_until(lambda: metric_value(scrape(daemon), "ipam_syncd_stale_events_total",
                                        '{topic="%s"}' % topics.servers) == 1,
                   30, "the stale event counted")
        text = scrape(daemon)
        assert metric_value(text, "ipam_syncd_stale_events_total",
                            '{topic="%s"}' % topics.subnets) == 0
        # The conflict resolved: the gauge follows the table back to 0.
        kafka.send(topics.servers, "b", server_event("b", "10.80.0.6", version=2))
        kafka.flush()
        wait_caught_up(db, daemon.group, 7)
        wait_until(lambda: metric_value(scrape(daemon), "ipam_syncd_conflicts",
                                        '{kind="several_servers"}') == 0,
                   60, "the conflict gone")
        oldest = metric_value(scrape(daemon), "ipam_syncd_retention_oldest_row_"
                              "timestamp_seconds", '{table="dead_letter"}')
        assert abs(oldest - float(db.scalar(
            "SELECT extract(epoch FROM received_at) FROM ipamd.dead_letter"))) < 0.01
        promtool_metrics(scrape(daemon))
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_dead_letter_figures_agree_after_a_rebuild():
    """A rebuild replays a kept dead letter: messages_total{result=
    "dead_letter"} and dead_letters_total both count it (the second counted
    rows inserted, and the replay inserts none)."""
    from test_property import RebuildDaemon
    db, topics, kafka = Database(), Topics(), Kafka()
    daemon = Daemon(db, topics).start()
    rebuild = None
    try:
        daemon.wait_ready()
        kafka.send(topics.subnets, "1", subnet_event("1", "10.81.0.0/16"))
        kafka.send(topics.servers, "bad", "not json")
        kafka.send(topics.servers, "1", server_event("1", "10.81.0.1"))
        kafka.flush()
        wait_caught_up(db, daemon.group, 3)
        wait_until(lambda: metric_value(scrape(daemon), "ipam_syncd_dead_letters_total")
                   == 1, 30, "the dead letter counted")
        assert daemon.stop() == 0
        rebuild = RebuildDaemon(db, topics, group=daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        assert db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 1
        text = scrape(rebuild)
        by_topic = metric_value(text, "ipam_syncd_messages_total",
                                '{topic="%s",result="dead_letter"}' % topics.servers)
        assert by_topic == 1, by_topic
        assert metric_value(text, "ipam_syncd_dead_letters_total") == by_topic
        assert rebuild.stop() == 0
    finally:
        if rebuild:
            rebuild.close()
        daemon.close()
        db.close()


def test_alert_rules_pass_promtool_and_name_exported_metrics():
    """docs/alerts.yml passes promtool check rules, and every metric its
    expressions name is one the daemon exports."""
    path = os.path.join(harness.ROOT, "docs", "alerts.yml")
    check = subprocess.run(["promtool", "check", "rules", path],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with open(path) as f:
        rules = f.read()
    named = set(re.findall(r"\b((?:ipam_syncd|process)_[a-z_]+)", rules))
    assert len(named) >= 15, named
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        wait_until(lambda: "ipam_syncd_dead_letters " in scrape(daemon), 60,
                   "the database figures")
        families = set(re.findall(r"^# TYPE (\S+)", scrape(daemon), re.M))
        # Written once there is something to say: after the first apply,
        # the first sweep (the tests' daemons do not sweep), a first row.
        later = {"ipam_syncd_last_apply_timestamp_seconds",
                 "ipam_syncd_last_sweep_timestamp_seconds",
                 "ipam_syncd_sweep_subnets_unswept",
                 "ipam_syncd_retention_oldest_row_timestamp_seconds"}
        for family in ("ipam_syncd_probe_send_errors_total",
                       "ipam_syncd_retention_seconds"):
            assert family in families, family
        missing = named - families - later
        assert not missing, missing
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()

def test_sweep_metrics_send_errors_and_last_sweep_time():
    """The sweeper's figures for alerts, in a network namespace (root):
    addresses with no route make send errors, two per sweep, counted in
    ipam_syncd_probe_send_errors_total; the last sweep's time follows the
    sweeps."""
    from test_sweeper import SweepRun
    started = time.time()
    run = SweepRun({"down_after": "1"})

    scrape_in_namespace = run.scrape_metrics

    def full_sweeps():
        return len([s for s in run.daemon.sweeps() if s["targets"] == 3])

    try:
        run.subnet("u", "203.0.113.0/29", ["203.0.113.1-203.0.113.2"])
        run.subnet("lo", "127.79.0.0/24", ["127.79.0.1"])
        run.settle()
        run.daemon.wait_sweeps(2, lambda s: s["targets"] == 3)
        before = full_sweeps()
        text = scrape_in_namespace()
        after = full_sweeps()
        promtool_metrics(text)
        errors = metric_value(text, "ipam_syncd_probe_send_errors_total")
        assert errors in [2 * n for n in range(before, after + 1)], (errors, before, after)
        assert errors >= 4
        first = metric_value(text, "ipam_syncd_last_sweep_timestamp_seconds")
        assert first is not None and first >= started - 1, (first, started)
        # This member probes both families: no subnet is left unswept.
        assert metric_value(text, "ipam_syncd_sweep_subnets_unswept") == 0, text
        run.daemon.wait_sweeps(1)
        second = metric_value(scrape_in_namespace(),
                              "ipam_syncd_last_sweep_timestamp_seconds")
        assert second > first, (first, second)
    finally:
        run.close()

if __name__ == "__main__":
    harness.main(globals())
