# Checks of the ops assets in deploy/ (ctest -L deploy): promtool lints the alert rules
# and the scrape config and runs the rules' unit tests; scripts/check-deploy-assets.py
# validates the Grafana dashboard and the rules' expressions (structure only) and runs
# its own negative cases. None of them needs the C++ build; all together take < 1 s.
# promtool comes with Debian's `prometheus` package (scripts/install-deps.sh test).
find_program(FIREBREAK_PROMTOOL promtool)
if(NOT FIREBREAK_PROMTOOL)
  set(FIREBREAK_PROMTOOL promtool)  # the tests then fail with "Unable to find executable"
endif()
set(FIREBREAK_DEPLOY_DIR ${PROJECT_SOURCE_DIR}/deploy)
set(FIREBREAK_ASSET_CHECK ${PROJECT_SOURCE_DIR}/scripts/check-deploy-assets.py)

add_test(NAME deploy_alert_rules_check
  COMMAND ${FIREBREAK_PROMTOOL} check rules ${FIREBREAK_DEPLOY_DIR}/prometheus/alerts.yml)
add_test(NAME deploy_alert_rules_test
  COMMAND ${FIREBREAK_PROMTOOL} test rules ${FIREBREAK_DEPLOY_DIR}/prometheus/alerts_test.yml)
add_test(NAME deploy_prometheus_config_check
  COMMAND ${FIREBREAK_PROMTOOL} check config ${FIREBREAK_DEPLOY_DIR}/prometheus/prometheus.yml)
add_test(NAME deploy_assets_structure
  COMMAND python3 ${FIREBREAK_ASSET_CHECK}
    --dashboard ${FIREBREAK_DEPLOY_DIR}/grafana/dashboard.json
    --rules ${FIREBREAK_DEPLOY_DIR}/prometheus/alerts.yml)
add_test(NAME deploy_assets_checker_selftest
  COMMAND python3 ${FIREBREAK_ASSET_CHECK} --self-test)
set_tests_properties(deploy_alert_rules_check deploy_alert_rules_test
  deploy_prometheus_config_check deploy_assets_structure deploy_assets_checker_selftest
  PROPERTIES LABELS deploy TIMEOUT 30)

# The metric contract: every metric, label and label value the dashboard and the rules use
# must be in the /metrics of the binary just built (`firebreak run` on free loopback
# ports, stopped by its PID). Needs the build, hence its own label (not "deploy").
add_test(NAME deploy_metrics_contract
  COMMAND python3 ${FIREBREAK_ASSET_CHECK}
    --dashboard ${FIREBREAK_DEPLOY_DIR}/grafana/dashboard.json
    --rules ${FIREBREAK_DEPLOY_DIR}/prometheus/alerts.yml
    --run-binary $<TARGET_FILE:firebreak>)
set_tests_properties(deploy_metrics_contract PROPERTIES LABELS metrics_contract TIMEOUT 60)
