#!/usr/bin/env python3
"""Checks the CloudEvents fixtures against the JSON Schemas in schema/.

Every good fixture must be valid against the schema of its entity.  Every
bad fixture marked "schema" in bad/EXPECTED must be refused by it (or not
be JSON at all), and every one marked "decoder" must be accepted by it, so
that the table says truly which mistakes the schemas document and which
only the decoder can see (host bits, pools, keys).

Usage: check_schemas.py SCHEMA_DIR CLOUDEVENTS_FIXTURE_DIR
Needs python3-jsonschema (draft 2020-12).
"""
import json
import os
import sys

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

ENTITIES = ("server", "subnet", "mark")


def load_validators(schema_dir):
    """One validator per entity, with address and date formats checked."""
    validators = {}
    for entity in ENTITIES:
        path = os.path.join(schema_dir, "cloudevents-%s.schema.json" % entity)
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        validators[entity] = Draft202012Validator(
            schema, format_checker=FormatChecker())
    return validators


def load_event(path):
    """The fixture as JSON, or None when it is not JSON at all."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError:
        return None


def first_error(validator, event):
    """The schema's most telling complaint about the event, or None."""
    error = best_match(validator.iter_errors(event))
    if error is None:
        return None
    # Inside oneOf, the branch whose type matches says what is wrong.
    while error.context:
        error = best_match(error.context)
    message = error.message
    if len(message) > 100:
        message = message[:100] + "..."
    return "%s: %s" % ("/".join(str(p) for p in error.absolute_path)
                       or "(top)", message)


def check_good(validators, good_dir, report):
    """Every good fixture is valid against its entity's schema."""
    for name in sorted(os.listdir(good_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(good_dir, name[:-5] + ".expect"),
                  encoding="utf-8") as f:
            entity = json.load(f)["entity"]
        event = load_event(os.path.join(good_dir, name))
        if event is None:
            report(False, "good/%s" % name, "is not JSON")
            continue
        error = first_error(validators[entity], event)
        report(error is None, "good/%s" % name, error or "valid")


def check_bad(validators, bad_dir, report):
    """Schema-level bad fixtures are refused, decoder-level ones accepted."""
    listed = set()
    with open(os.path.join(bad_dir, "EXPECTED"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, entity, _key, check, _text = line.split("\t")
            listed.add(name)
            label = "bad/%s (%s)" % (name, check)
            event = load_event(os.path.join(bad_dir, name))
            if event is None:
                report(check == "schema", label, "not JSON")
                continue
            error = first_error(validators[entity], event)
            if check == "schema":
                report(error is not None, label,
                       error or "the schema accepts it")
            elif check == "decoder":
                report(error is None, label,
                       "the schema refuses it too: %s" % error
                       if error else "the schema accepts it")
            else:
                report(False, label, "unknown check %r" % check)
    for name in sorted(os.listdir(bad_dir)):
        if name.endswith(".json") and name not in listed:
            report(False, "bad/%s" % name, "missing from EXPECTED")


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    validators = load_validators(argv[1])
    counts = {True: 0, False: 0}

    def report(ok, label, detail):
        counts[ok] += 1
        print("%s %s: %s" % ("ok  " if ok else "FAIL", label, detail))

    check_good(validators, os.path.join(argv[2], "good"), report)
    check_bad(validators, os.path.join(argv[2], "bad"), report)
    print("%d passed, %d failed" % (counts[True], counts[False]))
    return 0 if counts[False] == 0 and counts[True] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
