// Acceptance 6: a bad config exits 2 and names the file, line and key.
#include <gtest/gtest.h>

#include "harness.h"

namespace firebreak::testing {
namespace {

std::string Valid(const std::string& server_extra, const std::string& source_secret,
                  const std::string& timeout, const std::string& job_ref) {
  return "[server]\nlisten = \"127.0.0.1:9999\"\n" + server_extra +  // lines 1-2(+)
         "\n[[sources]]\nname = \"s\"\nkind = \"slack\"\npath = \"/hooks/s\"\n"
         "secret = " +
         source_secret + "\njob = \"" + job_ref +
         "\"\n"
         "\n[[jobs]]\ntype = \"work\"\nhandler = { command = [\"true\"] }\ntimeout = \"" +
         timeout + "\"\n";
}

struct Case {
  std::string name, text, expect_line, expect_key;
};

TEST(ConfigErrorsTest, EachErrorExitsTwoNamingFileLineAndKey) {
  TempDir dir;
  const std::string ok_secret = "{ env = \"HOME\" }";
  std::vector<Case> cases = {
      {"unknown_key", Valid("lisen_typo = 1\n", ok_secret, "5s", "work"), ":3:", "lisen_typo"},
      {"literal_secret", Valid("", "\"hunter2\"", "5s", "work"), ":8:", "secret"},
      {"bad_duration", Valid("", ok_secret, "5 sec", "work"), ":14:", "timeout"},
      {"undefined_job", Valid("", ok_secret, "5s", "nope"), ":9:", "job"},
  };
  for (const Case& c : cases) {
    std::string path = dir.Write(c.name + ".toml", c.text);
    auto result = RunFirebreak({"check", "-c", path});
    EXPECT_EQ(result.exit_code, 2) << c.name << ": " << result.out;
    EXPECT_NE(result.out.find(path + c.expect_line), std::string::npos)
        << c.name << ": " << result.out;
    EXPECT_NE(result.out.find(c.expect_key), std::string::npos) << c.name << ": " << result.out;
    EXPECT_EQ(result.out.find("hunter2"), std::string::npos) << "secret value leaked";
    // `run` refuses the same config the same way.
    auto run = RunFirebreak({"run", "-c", path});
    EXPECT_EQ(run.exit_code, 2) << c.name << ": " << run.out;
  }
  // The admin API is built: a token (and its own listener) check fine; the summary says
  // where it is and names the token's source, never its value.
  auto admin = RunFirebreak({"check", "-c",
                             dir.Write("admin.toml", Valid("admin_token = { env = \"HOME\" }\n"
                                                           "admin_listen = \"127.0.0.1:9998\"\n",
                                                           ok_secret, "5s", "work"))});
  EXPECT_EQ(admin.exit_code, 0) << admin.out;
  EXPECT_NE(admin.out.find("on at 127.0.0.1:9998, token env HOME"), std::string::npos) << admin.out;
  // Integrations are built: a config with one checks fine.
  auto egress = RunFirebreak(
      {"check", "-c",
       dir.Write("egress.toml", Valid("", ok_secret, "5s", "work") +
                                    "\n[[integrations]]\nname = \"api\"\nbase_url = "
                                    "\"http://127.0.0.1:9\"\n")});
  EXPECT_EQ(egress.exit_code, 0) << egress.out;

  auto good =
      RunFirebreak({"check", "-c", dir.Write("good.toml", Valid("", ok_secret, "5s", "work"))});
  EXPECT_EQ(good.exit_code, 0) << good.out;
}

}  // namespace
}  // namespace firebreak::testing
