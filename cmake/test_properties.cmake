# Included by ctest after gtest_discover_tests' own files: tests that start a real
# redis-server get the extra label "redis", tests that start a PostgreSQL cluster the
# label "postgres" (ctest -L redis / -LE postgres), per STYLE.md; timing-sensitive
# fault tests run serially.
#
# COST orders a parallel run: ctest starts the costliest first. A clean clone has no
# timings of its own (Testing/Temporary/CTestCostData.txt), and in declaration order the
# minute-long schedule tests started last and set the suite's end (docs/build.md). So the
# integration tests, seconds each where unit tests take milliseconds, start first, and the
# minute-long ones before them.
foreach(suite unit integration)
  foreach(test_name IN LISTS ${suite}_tests_TESTS)
    set(labels "${suite}")
    if(test_name MATCHES "/redis( |$)|Redis")
      list(APPEND labels redis)
    endif()
    if(test_name MATCHES "/postgres( |$)|Postgres")
      list(APPEND labels postgres)
    endif()
    set_tests_properties("${test_name}" PROPERTIES LABELS "${labels}")
    # Tests that mostly sleep (measured under ASan: ≤ 0.25 CPU-s per second) are labelled
    # "waiting"; every other integration test takes a "cpu" slot. The slots count only
    # when ctest gets a --resource-spec-file (scripts/test.sh's sanitized phase): waiting
    # tests then run beside the CPU-bound ones rather than in their place.
    if(suite STREQUAL "integration")
      set_tests_properties("${test_name}" PROPERTIES COST 10)
      if(test_name MATCHES "ScheduleTest\\.|^ActionsCrashTest\\.")
        list(APPEND labels waiting)
        set_tests_properties("${test_name}" PROPERTIES LABELS "${labels}")
      else()
        set_tests_properties("${test_name}" PROPERTIES RESOURCE_GROUPS "cpu:1")
      endif()
    endif()
    if(test_name MATCHES "ForAMinute")
      set_tests_properties("${test_name}" PROPERTIES COST 70)
    endif()
    # These assert health-endpoint latency (p99 < 10 ms) while a store hangs: run alone,
    # so another test's burst on the same 2 cores is not what they measure.
    if(test_name MATCHES "^StoreFaultsTest\\.")
      set_tests_properties("${test_name}" PROPERTIES RUN_SERIAL TRUE)
    endif()
  endforeach()
endforeach()
