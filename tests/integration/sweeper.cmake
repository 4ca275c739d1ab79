# The ping sweeper's integration tests: the daemon in network namespaces
# of the test's own, forge_replies answering falsely and truly, the sweep
# shared by several instances, and the benchmark's smoke form.  Included
# by CMakeLists.txt next to this file; ipam_python_tests is defined there.
# They need root (namespaces, raw and packet sockets), as the tests run
# here and in CI.  All carry the label "sweeper": ctest -L sweeper.
add_executable(forge_replies forge_replies.c)

set(IPAM_SWEEPER_TESTS
	test_loopback_answers_ipv4_and_ipv6
	test_network_and_broadcast_addresses_are_never_probed
	test_replies_the_kernel_drops_are_counted_and_said
	test_sweeps_without_news_write_no_address_row
	test_rebuild_keeps_the_sweeper_state
	test_schema_10_carries_what_the_sweeps_wrote
	test_ping_sockets_without_cap_net_raw
	test_refuses_to_start_without_any_icmp_socket
	test_down_after_missed_sweeps_then_up_again
	test_sweeps_go_on_when_the_database_clock_steps_back
	test_retries_recover_lost_first_probes
	test_replies_in_time_count_however_late_the_loop_reads_them
	test_ping_false_subnet_is_never_probed
	test_forged_replies_never_make_an_address_active
	test_unreachable_addresses_count_as_missed
	test_postgresql_hosts_after_one_that_drops_packets_are_reached
	test_postgresql_host_names_are_looked_up_off_the_loop
	test_off_sends_nothing_and_reload_turns_it_on_and_off
	test_a_read_of_the_targets_meeting_held_leases_is_tried_again
	test_postgresql_lost_mid_sweep
	test_sweep_whose_session_ends_while_probing_is_given_up
	test_sweep_given_up_after_its_news_leaves_nothing
	test_sweep_and_apply_never_overwrite_each_other
)
ipam_python_tests(test_sweeper.py ${IPAM_SWEEPER_TESTS})

# Several instances: the claims in SQL with sessions as members, then three
# daemons and a SIGKILL, every echo request counted on the hosts' bridge.
set(IPAM_SWEEP_SHARE_TESTS
	test_sweep_claims_lease_each_subnet_once_per_round
	test_sweep_claims_after_the_database_clock_stepped_back
	test_sweep_longer_than_ten_rounds_still_writes_its_news
	test_sweep_claim_of_a_lease_waits_for_the_commit_holding_it
	test_sweep_news_of_a_row_made_again_meanwhile_is_not_kept_active
	test_an_address_moved_into_a_subnet_nobody_sweeps_is_not_kept_active
	test_sweep_claims_lease_ipv6_subnets_only_to_members_with_ipv6
	test_sweep_pass_counts_only_the_subnets_probed
	test_sweep_interrupted_between_news_and_pass_leaves_nothing
	test_sweep_state_of_subnets_no_longer_swept_is_pruned
	test_shared_sweep_three_instances_probe_each_address_once
)
ipam_python_tests(test_sweep_share.py ${IPAM_SWEEP_SHARE_TESTS})

# Not root: each says SKIP and exits 77 (sudo scripts/test runs them).
foreach(test ${IPAM_SWEEPER_TESTS} ${IPAM_SWEEP_SHARE_TESTS})
	set_tests_properties(it_${test} PROPERTIES LABELS sweeper ENVIRONMENT
		"IPAM_SYNCD_BIN=$<TARGET_FILE:ipam-syncd>;IPAM_FORGE_REPLIES=$<TARGET_FILE:forge_replies>"
		SKIP_RETURN_CODE 77)
endforeach()

# The benchmark's smoke form (bench/sweep): 254 loopback addresses, two
# sweeps and two fping runs.  It checks that the benchmark still works; it
# measures nothing.
add_test(NAME bench_sweep_smoke
	COMMAND ${IPAM_PYTHON} ${CMAKE_SOURCE_DIR}/bench/sweep/sweep_bench.py --smoke)
set_tests_properties(bench_sweep_smoke PROPERTIES LABELS sweeper
	ENVIRONMENT "IPAM_SYNCD_BIN=$<TARGET_FILE:ipam-syncd>" TIMEOUT 300
	SKIP_RETURN_CODE 77)
