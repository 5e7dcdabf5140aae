# Included by ctest after gtest_discover_tests' own files: tests that start a real
# redis-server get the extra label "redis" (ctest -L redis / -LE redis), per STYLE.md.
foreach(suite unit integration)
  foreach(test_name IN LISTS ${suite}_tests_TESTS)
    if(test_name MATCHES "/redis( |$)|Redis")
      set_tests_properties("${test_name}" PROPERTIES LABELS "${suite};redis")
    endif()
  endforeach()
endforeach()
