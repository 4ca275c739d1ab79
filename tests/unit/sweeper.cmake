# Unit tests of the ping sweeper's pure parts: packets and cookies, the
# sequence map, the pacing maths, the SQL text.  Included by CMakeLists.txt
# next to this file.  Each test compiles the one source it tests, so that
# it does not depend on how the sweeper's library is put together; it
# links ipam_decode only for test_support.c (and ipam_base's log).
foreach(name packet seqmap pace store)
	add_executable(test_sweep_${name} test_sweep_${name}.c test_support.c
		${CMAKE_SOURCE_DIR}/sweeper/sweep_${name}.c)
	target_link_libraries(test_sweep_${name} PRIVATE ipam_decode
		PkgConfig::CMOCKA)
	add_test(NAME unit_sweep_${name} COMMAND test_sweep_${name})
	set_tests_properties(unit_sweep_${name} PROPERTIES LABELS sweeper)
endforeach()
