#include "egress/http_client.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <mutex>

#include "common/http_util.h"

namespace firebreak::egress {
namespace {

#ifdef FIREBREAK_VERSION
constexpr const char* kUserAgent = "firebreak/" FIREBREAK_VERSION;
#else
constexpr const char* kUserAgent = "firebreak";
#endif

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' ||
                        s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

AttemptOutcome::Kind KindOf(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return AttemptOutcome::Kind::kResponse;
    case CURLE_OPERATION_TIMEDOUT:
      return AttemptOutcome::Kind::kTimeout;
    // Nothing reached the upstream's application: resending cannot repeat an effect.
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return AttemptOutcome::Kind::kConnectFailed;
    default:
      return AttemptOutcome::Kind::kConnectionError;
  }
}

}  // namespace

struct HttpClient::Socket {
  Socket(boost::asio::io_context& io, int socket_fd) : fd(socket_fd), descriptor(io) {
    boost::system::error_code ignored;
    descriptor.assign(socket_fd, ignored);
  }
  // curl owns the descriptor: never close it, only stop watching it.
  ~Socket() {
    if (descriptor.is_open()) descriptor.release();
  }
  int fd;
  boost::asio::posix::stream_descriptor descriptor;
  int what = 0;  // CURL_POLL_IN / OUT / INOUT
  bool reading = false;
  bool writing = false;
};

struct HttpClient::Transfer {
  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }

  static size_t OnHeader(char* data, size_t size, size_t count, void* self) {
    auto* transfer = static_cast<Transfer*>(self);
    std::string_view line(data, size * count);
    if (line.rfind("HTTP/", 0) == 0) {
      transfer->response.headers.clear();  // a new response (after 100 Continue or a retry)
    } else if (size_t colon = line.find(':'); colon != std::string_view::npos && colon > 0) {
      transfer->response.headers.emplace_back(AsciiLower(line.substr(0, colon)),
                                              std::string(TrimView(line.substr(colon + 1))));
    }
    return size * count;
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* self) {
    auto* transfer = static_cast<Transfer*>(self);
    size_t bytes = size * count;
    if (transfer->response.body.size() + bytes > transfer->request.max_response_bytes) {
      transfer->too_large = true;
      return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    transfer->response.body.append(data, bytes);
    return bytes;
  }

  uint64_t id = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  ClientRequest request;
  ClientResponse response;
  Callback done;
  bool too_large = false;
  std::chrono::steady_clock::time_point started;
  char error[CURL_ERROR_SIZE] = {};
};

HttpClient::HttpClient(boost::asio::io_context& io, long max_connections)
    : io_(io), timer_(io) {
  GlobalInit();
  multi_ = curl_multi_init();
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &HttpClient::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &HttpClient::OnTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, std::max(1L, max_connections));
}

HttpClient::~HttpClient() {
  *alive_ = false;
  timer_.cancel();
  for (auto& [id, transfer] : transfers_) curl_multi_remove_handle(multi_, transfer->easy);
  transfers_.clear();
  curl_multi_cleanup(multi_);  // closes cached connections (REMOVE callbacks run first)
  sockets_.clear();
}

int HttpClient::OnSocket(void* /*easy*/, int fd, int what, void* client, void* /*socket_data*/) {
  auto* self = static_cast<HttpClient*>(client);
  if (what == CURL_POLL_REMOVE) {
    auto it = self->sockets_.find(fd);
    if (it != self->sockets_.end()) {
      // Stop watching now, not when the last pending wait lets go of the Socket: curl
      // closes the fd next, and a new socket may get the same number at once.
      it->second->what = 0;
      it->second->descriptor.release();  // cancels the waits (operation_aborted)
      self->sockets_.erase(it);
    }
    return 0;
  }
  std::shared_ptr<Socket>& socket = self->sockets_[fd];
  if (!socket) socket = std::make_shared<Socket>(self->io_, fd);
  socket->what = what;
  self->Arm(socket);
  return 0;
}

int HttpClient::OnTimer(void* /*multi*/, long timeout_ms, void* client) {
  auto* self = static_cast<HttpClient*>(client);
  // curl moves its timer at nearly every call. Re-arming an Asio timer reprograms the
  // reactor's timerfd (a syscall each time), so the timer is only moved *earlier*: a
  // timer that fires before curl needs it, or after curl cancelled it, costs one cheap
  // socket_action call that finds nothing due. curl must not be re-entered from its own
  // callback: even a zero timeout goes through the io_context.
  if (timeout_ms < 0) return 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  if (self->timer_armed_ && self->timer_deadline_ <= deadline) return 0;
  self->timer_armed_ = true;
  self->timer_deadline_ = deadline;
  self->timer_.expires_at(deadline);
  std::weak_ptr<bool> alive = self->alive_;
  self->timer_.async_wait([self, alive](const boost::system::error_code& ec) {
    auto still = alive.lock();
    if (ec == boost::asio::error::operation_aborted || !still || !*still) return;
    self->timer_armed_ = false;
    self->OnTimeout();
  });
  return 0;
}

void HttpClient::Arm(const std::shared_ptr<Socket>& socket) {
  std::weak_ptr<bool> alive = alive_;
  auto wait = [this, alive, socket](boost::asio::posix::descriptor_base::wait_type type,
                                    bool Socket::*pending, int event) {
    (*socket).*pending = true;
    socket->descriptor.async_wait(
        type, [this, alive, socket, pending, event](const boost::system::error_code& ec) {
          (*socket).*pending = false;
          auto still = alive.lock();
          if (!still || !*still || ec == boost::asio::error::operation_aborted) return;
          auto it = sockets_.find(socket->fd);
          if (it == sockets_.end() || it->second != socket) return;  // curl let go of it
          OnSocketReady(socket->fd, ec ? CURL_CSELECT_ERR : event);
          // Still watched with the same interest: wait again (the wait re-arms epoll, so
          // data curl left unread is reported at once).
          it = sockets_.find(socket->fd);
          if (it != sockets_.end() && it->second == socket) Arm(socket);
        });
  };
  if ((socket->what & CURL_POLL_IN) != 0 && !socket->reading) {
    wait(boost::asio::posix::descriptor_base::wait_read, &Socket::reading, CURL_CSELECT_IN);
  }
  if ((socket->what & CURL_POLL_OUT) != 0 && !socket->writing) {
    wait(boost::asio::posix::descriptor_base::wait_write, &Socket::writing, CURL_CSELECT_OUT);
  }
}

void HttpClient::OnSocketReady(int fd, int event) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, event, &running);
  CollectFinished();
}

void HttpClient::OnTimeout() {
  int running = 0;
  curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  CollectFinished();
}

void HttpClient::CollectFinished() {
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
    if (message->msg != CURLMSG_DONE) continue;
    CURL* easy = message->easy_handle;
    CURLcode code = message->data.result;
    Transfer* raw = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
    curl_multi_remove_handle(multi_, easy);
    if (raw == nullptr) continue;
    auto it = transfers_.find(raw->id);
    if (it == transfers_.end()) continue;
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    transfers_.erase(it);
    Complete(std::move(transfer), code);
  }
}

void HttpClient::Complete(std::unique_ptr<Transfer> transfer, int curl_code) {
  auto code = static_cast<CURLcode>(curl_code);
  ClientResponse& response = transfer->response;
  response.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - transfer->started);
  response.outcome.kind = KindOf(code);
  if (code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    response.outcome.status = static_cast<int>(status);
  } else {
    response.headers.clear();
    response.body.clear();
    if (transfer->too_large) {
      response.body_too_large = true;
      response.error = "response body larger than " +
                       std::to_string(transfer->request.max_response_bytes) + " bytes";
    } else {
      response.error = transfer->error[0] != '\0' ? transfer->error : curl_easy_strerror(code);
    }
  }
  Callback done = std::move(transfer->done);
  ClientResponse answer = std::move(response);
  transfer.reset();  // the easy handle goes before the callback, which may send again
  done(std::move(answer));
}

namespace {

// curl closes a connection in the middle of a request when the attempt times out or the
// call is cancelled. A graceful close would still send what the kernel had queued: after
// a network stall, a request the caller gave up on (and whose concurrency permit another
// call now holds) could reach the upstream seconds later. SO_LINGER 0 makes the close an
// abort (RST) that drops it. Idle pooled connections lose nothing by it.
int AbortOnClose(void*, curl_socket_t fd, curlsocktype purpose) {
  if (purpose == CURLSOCKTYPE_IPCXN) {
    const linger abort_on_close{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  }
  return CURL_SOCKOPT_OK;
}

}  // namespace

uint64_t HttpClient::Send(ClientRequest request, Callback done) {
  auto transfer = std::make_unique<Transfer>();
  Transfer& t = *transfer;
  t.id = next_id_++;
  t.request = std::move(request);
  t.done = std::move(done);
  t.started = std::chrono::steady_clock::now();
  t.easy = curl_easy_init();
  CURL* easy = t.easy;
  const ClientRequest& req = t.request;
  const long timeout_ms = std::max<long>(1, static_cast<long>(req.timeout.count()));

  curl_easy_setopt(easy, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(easy, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, &AbortOnClose);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
  if (!req.ca_file.empty()) {
    // Only these CAs: the system directory would otherwise still be searched.
    curl_easy_setopt(easy, CURLOPT_CAINFO, req.ca_file.c_str());
    curl_easy_setopt(easy, CURLOPT_CAPATH, nullptr);
  }

  const std::string& method = req.method;
  const bool carries_body =
      !req.body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  if (carries_body) {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req.body.data());
    if (method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  bool has_user_agent = false;
  bool has_content_type = false;
  for (const auto& [name, value] : req.headers) {
    has_user_agent = has_user_agent || EqualsIgnoreCase(name, "user-agent");
    has_content_type = has_content_type || EqualsIgnoreCase(name, "content-type");
    std::string line = name + ": " + value;
    if (value.empty()) line = name + ";";  // curl's syntax for a header with an empty value
    t.headers = curl_slist_append(t.headers, line.c_str());
  }
  // No "Expect: 100-continue" round trip, and no form content type curl would guess.
  t.headers = curl_slist_append(t.headers, "Expect:");
  if (carries_body && !has_content_type) t.headers = curl_slist_append(t.headers, "Content-Type:");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t.headers);
  if (!has_user_agent) curl_easy_setopt(easy, CURLOPT_USERAGENT, kUserAgent);

  const uint64_t id = t.id;
  CURLMcode added = curl_multi_add_handle(multi_, easy);
  if (added != CURLM_OK) {
    t.response.outcome.kind = AttemptOutcome::Kind::kConnectFailed;
    t.response.error = std::string("cannot start the request: ") + curl_multi_strerror(added);
    std::shared_ptr<Transfer> failed(std::move(transfer));
    boost::asio::post(io_, [failed] {
      Callback callback = std::move(failed->done);
      callback(std::move(failed->response));
    });
    return id;
  }
  transfers_.emplace(id, std::move(transfer));
  return id;
}

void HttpClient::Cancel(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  curl_multi_remove_handle(multi_, it->second->easy);
  transfers_.erase(it);
}

}  // namespace firebreak::egress
