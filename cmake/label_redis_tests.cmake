# Included by ctest after gtest_discover_tests' own files: tests that start a real
# redis-server get the extra label "redis", tests that start a PostgreSQL cluster the
# label "postgres" (ctest -L redis / -LE postgres), per STYLE.md; timing-sensitive
# fault tests run serially.
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
    # These assert health-endpoint latency (p99 < 10 ms) while a store hangs: run alone,
    # so another test's burst on the same 2 cores is not what they measure.
    if(test_name MATCHES "^StoreFaultsTest\\.")
      set_tests_properties("${test_name}" PROPERTIES RUN_SERIAL TRUE)
    endif()
  endforeach()
endforeach()
