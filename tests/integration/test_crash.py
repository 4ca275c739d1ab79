"""Crash test: SIGKILL the daemon at random moments while it applies a
stream of a few thousand events, many times, restarting it each time with
the same group and database, and producing more events between kills.  At
the end `ipam` equals the oracle, no event's effect was applied twice (its
source offset appears at most once per address in the audit history), none
was skipped (the stored offsets equal the messages produced, the audit
history chains without a gap and ends in the final table).

IPAM_TEST_SEED=<n> replays one run."""

import random
import time

import harness
from harness import Daemon, Database, Topics, unique, wait_until
from test_property import (PARTITIONS, History, Producer, announce,
                           assert_matches_oracle, audit_problems, seeds,
                           stored_offsets, summary, wait_caught_up)


def consumed(db, group):
    return sum(stored_offsets(db, group).values())


def test_sigkill_while_applying():
    seed = (seeds() or [random.randrange(1 << 31)])[0]
    announce(seed)
    rng = random.Random(seed)
    history = History(rng, servers=1000, subnets=40, marks=100)
    messages = history.messages
    kills = rng.randint(8, 15)
    cuts = sorted(rng.sample(range(1, len(messages)), kills))
    chunks = [messages[a:b] for a, b in zip([0] + cuts, cuts + [len(messages)])]
    print("%d messages in %d chunks, %d kills: %s"
          % (len(messages), len(chunks), kills, summary(history)), flush=True)

    db, topics = Database(), Topics(partitions=PARTITIONS)
    producer = Producer(topics)
    group = unique("g")
    # Small batches, so that kills land between many commits; static group
    # membership, so that a restarted instance takes its partitions over at
    # once instead of waiting for the killed one's session to time out.
    config = {"consumer": {"batch_max_events": "50"},
              "kafka": {"group.instance.id": unique("crash"),
                        "session.timeout.ms": "6000",
                        "heartbeat.interval.ms": "500"}}
    daemons = []

    def start():
        daemon = Daemon(db, topics, group=group, config=config).start()
        daemons.append(daemon)
        return daemon

    try:
        start().wait_ready()
        mid_stream = 0
        for i in range(kills):
            daemon = daemons[-1] if i == 0 else start()
            during = rng.random() < 0.5
            if not during:
                producer.send(chunks[i])
            mode = rng.random()
            if mode < 0.15:
                # A moment of the start: joining the group, loading offsets.
                time.sleep(rng.uniform(0.0, 0.5))
                how = "while starting"
            else:
                daemon.wait_log(r"kafka: assigned ", timeout=60)
            if during:
                producer.send(chunks[i])
            produced = sum(producer.counts.values())
            if mode < 0.15:
                pass
            elif mode < 0.55:
                # A moment in time.
                time.sleep(rng.uniform(0.0, 0.3))
                how = "after a pause"
            else:
                # A point in the stream: once a random share of what is
                # pending has been committed.
                # (more than a batch before the end when there is more).
                done = consumed(db, group)
                target = done + rng.randint(0, max(0, produced - done - 60))
                wait_until(lambda: consumed(db, group) >= target or daemon.proc.poll()
                           is not None, 60, "offsets to reach %d" % target, interval=0.005)
                how = "at offset sum %d" % target
            assert daemon.proc.poll() is None, "daemon exited on its own:\n%s" \
                % daemon.log()[-3000:]
            daemon.kill()
            done = consumed(db, group)
            mid_stream += done < produced
            print("kill %d %s: %d of %d messages committed"
                  % (i + 1, how, done, produced), flush=True)

        producer.send(chunks[-1])
        final = start()
        began = time.monotonic()
        wait_caught_up(db, group, producer.counts, final)
        print("caught up %.1f s after the last start; %d of %d kills landed with "
              "messages pending" % (time.monotonic() - began, mid_stream, kills),
              flush=True)
        assert mid_stream >= kills // 3, "too few kills landed mid-stream"
        assert_matches_oracle(db, producer.events, "after %d kills" % kills)
        problems = audit_problems(db, producer.counts)
        assert not problems, problems
        assert final.stop() == 0, final.log()[-3000:]
    finally:
        for daemon in daemons:
            daemon.close()
        db.close()


if __name__ == "__main__":
    harness.main(globals())
