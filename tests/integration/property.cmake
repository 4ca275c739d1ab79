# The property test (random histories against an independent oracle, and a
# rebuild from a corrupted table) and the crash test (SIGKILL while applying).
# Included by CMakeLists.txt next to this file; ipam_python_tests is defined
# there.
ipam_python_tests(test_property.py test_random_histories_match_oracle
	test_two_instances_match_oracle)
ipam_python_tests(test_crash.py test_sigkill_while_applying)
# Compaction invariance and the order and versions contract: random mixed
# histories and one fixed scenario per line of the contract, live, rebuilt
# from the compacted topics and on a fresh database; and once with the
# broker's own log compaction.
ipam_python_tests(test_compaction.py test_compaction_invariance
	test_compaction_scenarios test_broker_compaction)
