#include "support/https_server.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "support/process.h"

namespace firebreak::testing {
namespace {

// argv: cert key state_dir. Writes state_dir/port once listening; appends one JSON
// line per event to state_dir/events.jsonl; answers with state_dir/reply.json.
constexpr char kServerScript[] = R"PY(
import http.server, json, os, select, ssl, sys, threading, time

cert, key, state = sys.argv[1:4]
lock = threading.Lock()

def record(**event):
    line = json.dumps(event) + "\n"
    with lock, open(os.path.join(state, "events.jsonl"), "a") as f:
        f.write(line)

def current_reply():
    try:
        with open(os.path.join(state, "reply.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
context.set_alpn_protocols(["http/1.1"])

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def answer(self):
        connection = "%s:%d" % self.client_address[:2]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        record(kind="request", connection=connection, method=self.command, target=self.path,
               headers={k.lower(): v for k, v in self.headers.items()}, body=body)
        reply = current_reply()
        delay = reply.get("delay_ms", 0) / 1000.0
        if delay > 0 and self.connection.pending() == 0:
            # Readable before the answer is due: the client closed (or gave up).
            readable, _, _ = select.select([self.connection], [], [], delay)
            if readable:
                self.close_connection = True
                return
        data = reply.get("body", "").encode()
        self.send_response(reply.get("status", 200))
        for name, value in reply.get("headers", []):
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def finish_request(self, request, client_address):
        connection = "%s:%d" % client_address[:2]
        request.settimeout(30)
        try:
            tls = context.wrap_socket(request, server_side=True)
        except OSError as e:  # ssl.SSLError included
            record(kind="handshake_failed", connection=connection, error=str(e))
            return
        record(kind="handshake", connection=connection)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            record(kind="closed", connection=connection)
            try:
                tls.close()
            except OSError:
                pass

server = Server(("127.0.0.1", 0), Handler)
with open(os.path.join(state, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(state, "port.tmp"), os.path.join(state, "port"))
server.serve_forever()
)PY";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return static_cast<bool>(out.flush());
}

// Every complete event line of `kind` (a line being written is skipped).
std::vector<nlohmann::json> ReadEvents(const std::string& path, const std::string& kind) {
  std::vector<nlohmann::json> events;
  std::istringstream lines(ReadAll(path));
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
    if (event.is_object() && event.value("kind", "") == kind) events.push_back(std::move(event));
  }
  return events;
}

}  // namespace

Result<TestCertificates> MakeTestCertificates(const std::string& dir) {
  const std::string log = dir + "/openssl.log";
  auto run = [&](const std::vector<std::string>& args) {
    return RunToCompletion(args, log, "", std::chrono::seconds(30)) == 0;
  };
  const std::vector<std::string> kNewKey = {"-newkey", "ec", "-pkeyopt",
                                            "ec_paramgen_curve:prime256v1", "-nodes"};
  auto with_key = [&](std::vector<std::string> args) {
    args.insert(args.begin() + 2, kNewKey.begin(), kNewKey.end());
    return args;
  };
  bool ok = WriteFile(dir + "/ca.cnf",
                      "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_ca\n"
                      "[dn]\nCN = firebreak test CA\n"
                      "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
                      "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n") &&
            run(with_key({"openssl", "req", "-x509", "-config", dir + "/ca.cnf", "-keyout",
                          dir + "/ca.key", "-out", dir + "/ca.pem", "-days", "2"}));
  // Two leaf certificates from the same CA; only their names differ.
  struct Leaf {
    std::string file;  // base name
    std::string common_name;
    std::string alt_names;
    int serial;
  };
  for (const Leaf& leaf : {Leaf{"server", "localhost", "DNS:localhost,IP:127.0.0.1", 1001},
                           Leaf{"other", "other.invalid", "DNS:other.invalid", 1002}}) {
    const std::string base = dir + "/" + leaf.file;
    ok = ok &&
         WriteFile(base + ".cnf", "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = " +
                                      leaf.common_name + "\n") &&
         WriteFile(base + ".ext",
                   "[leaf]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n"
                   "extendedKeyUsage = serverAuth\nauthorityKeyIdentifier = keyid\n"
                   "subjectAltName = " +
                       leaf.alt_names + "\n") &&
         run(with_key({"openssl", "req", "-new", "-config", base + ".cnf", "-keyout", base + ".key",
                       "-out", base + ".csr"})) &&
         run({"openssl", "x509", "-req", "-in", base + ".csr", "-CA", dir + "/ca.pem", "-CAkey",
              dir + "/ca.key", "-set_serial", std::to_string(leaf.serial), "-days", "2", "-extfile",
              base + ".ext", "-extensions", "leaf", "-out", base + ".pem"});
  }
  if (!ok) return Internal("openssl failed making the test certificates:\n" + ReadAll(log));
  return TestCertificates{dir + "/ca.pem", dir + "/server.pem", dir + "/server.key",
                          dir + "/other.pem", dir + "/other.key"};
}

std::string HttpsRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

HttpsServer::HttpsServer(std::string dir, std::string cert_file, std::string key_file)
    : dir_(std::move(dir)), cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}

HttpsServer::~HttpsServer() { Stop(); }

bool HttpsServer::Start(std::chrono::milliseconds timeout) {
  if (pid_ > 0) return true;
  const std::string script = dir_ + "/https_server.py";
  std::remove((dir_ + "/port").c_str());
  if (!WriteFile(script, kServerScript)) return false;
  pid_ = Spawn({"/usr/bin/python3", script, cert_file_, key_file_, dir_}, dir_ + "/server.log");
  if (pid_ < 0) return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string port = ReadAll(dir_ + "/port");
    if (!port.empty()) {
      port_ = static_cast<uint16_t>(std::stoi(port));
      return true;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {  // died at start-up: see Log()
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Stop();
  return false;
}

void HttpsServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  WaitExit(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

bool HttpsServer::SetReply(const HttpsReply& reply) {
  nlohmann::json headers = nlohmann::json::array();
  for (const auto& [name, value] : reply.headers) headers.push_back({name, value});
  nlohmann::json json = {{"status", reply.status},
                         {"headers", headers},
                         {"body", reply.body},
                         {"delay_ms", reply.delay.count()}};
  // Written aside and renamed: the server never reads half a reply.
  const std::string path = dir_ + "/reply.json";
  return WriteFile(path + ".tmp", json.dump()) &&
         std::rename((path + ".tmp").c_str(), path.c_str()) == 0;
}

std::string HttpsServer::Url(const std::string& path, const std::string& host) const {
  return "https://" + host + ":" + std::to_string(port_) + path;
}

std::vector<HttpsRequest> HttpsServer::Requests() const {
  std::vector<HttpsRequest> requests;
  for (const nlohmann::json& event : ReadEvents(dir_ + "/events.jsonl", "request")) {
    HttpsRequest request;
    request.connection = event.value("connection", "");
    request.method = event.value("method", "");
    request.target = event.value("target", "");
    request.body = event.value("body", "");
    for (const auto& [name, value] : event.at("headers").items()) {
      request.headers[name] = value.get<std::string>();
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

int HttpsServer::Handshakes() const {
  return static_cast<int>(ReadEvents(dir_ + "/events.jsonl", "handshake").size());
}

std::vector<std::string> HttpsServer::FailedHandshakes() const {
  std::vector<std::string> errors;
  for (const nlohmann::json& event : ReadEvents(dir_ + "/events.jsonl", "handshake_failed")) {
    errors.push_back(event.value("error", ""));
  }
  return errors;
}

int HttpsServer::ClosedConnections() const {
  return static_cast<int>(ReadEvents(dir_ + "/events.jsonl", "closed").size());
}

std::string HttpsServer::Log() const { return ReadAll(dir_ + "/server.log"); }

}  // namespace firebreak::testing
