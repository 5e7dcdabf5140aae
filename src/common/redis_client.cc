#include "common/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/url/parse.hpp>
#include <charconv>

namespace firebreak::redis {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

std::string Address::ToString() const {
  return host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Result<Address> ParseRedisUrl(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("bad redis url \"" + std::string(url) + "\": " + why +
                           " (expected redis://[[user]:password@]host[:port][/db])");
  };
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return bad(parsed.error().message());
  if (parsed->scheme() != "redis") return bad("scheme must be redis");
  Address address;
  if (!parsed->host().empty()) address.host = std::string(parsed->encoded_host());
  if (address.host.size() > 2 && address.host.front() == '[') {
    address.host = address.host.substr(1, address.host.size() - 2);  // IPv6 literal
  }
  if (parsed->has_port()) {
    uint16_t port = parsed->port_number();
    if (port == 0) return bad("port must be 1-65535");
    address.port = port;
  }
  if (parsed->has_userinfo()) {
    address.username = parsed->user();
    address.password = parsed->password();
  }
  std::string path = parsed->path();
  if (!path.empty() && path != "/") {
    std::string_view db = std::string_view(path).substr(1);
    auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), address.db);
    if (ec != std::errc() || end != db.data() + db.size() || address.db < 0) {
      return bad("database must be a number");
    }
  }
  if (parsed->has_query() || parsed->has_fragment()) return bad("no query or fragment allowed");
  return address;
}

void ReplyDeleter::operator()(redisReply* reply) const { freeReplyObject(reply); }

bool IsError(const redisReply* reply) { return reply && reply->type == REDIS_REPLY_ERROR; }

std::string ReplyString(const redisReply* reply) {
  if (!reply) return "";
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(reply->integer);
    default:
      return "";
  }
}

long long ReplyInteger(const redisReply* reply) {
  if (!reply) return 0;
  if (reply->type == REDIS_REPLY_INTEGER) return reply->integer;
  if (reply->type == REDIS_REPLY_STRING) {
    long long value = 0;
    std::from_chars(reply->str, reply->str + reply->len, value);
    return value;
  }
  return 0;
}

size_t ReplyLength(const redisReply* reply) {
  return reply && reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
}

const redisReply* ReplyElement(const redisReply* reply, size_t i) {
  return i < ReplyLength(reply) ? reply->element[i] : nullptr;
}

Connection::Connection(redisContext* context, Address address)
    : context_(context), address_(std::move(address)) {}

Connection::~Connection() { redisFree(context_); }

Result<std::unique_ptr<Connection>> Connection::Open(const Address& address,
                                                     std::chrono::milliseconds connect_timeout,
                                                     std::chrono::milliseconds command_timeout) {
  timeval tv = ToTimeval(connect_timeout);
  redisContext* context = redisConnectWithTimeout(address.host.c_str(), address.port, tv);
  if (!context) return Unavailable("redis " + address.ToString() + ": out of memory");
  std::unique_ptr<Connection> connection(new Connection(context, address));
  if (context->err) {
    return Unavailable("redis " + address.ToString() + ": cannot connect: " + context->errstr);
  }
  // A peer that vanishes without a FIN (host down, cable cut) is noticed by keepalive.
  redisEnableKeepAlive(context);
  if (command_timeout.count() > 0) redisSetTimeout(context, ToTimeval(command_timeout));

  auto check = [&](std::vector<std::string> argv, const char* what) -> Status {
    Result<Reply> reply = connection->Command(argv);
    if (!reply.ok()) return reply.status();
    if (IsError(reply->get())) {
      return Unavailable("redis " + address.ToString() + ": " + what + ": " +
                         ReplyString(reply->get()));
    }
    return Status::Ok();
  };
  if (!address.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!address.username.empty()) auth.push_back(address.username);
    auth.push_back(address.password);
    if (Status s = check(auth, "AUTH"); !s.ok()) return s;
  }
  if (address.db != 0) {
    if (Status s = check({"SELECT", std::to_string(address.db)}, "SELECT"); !s.ok()) return s;
  }
  return connection;
}

void Connection::Append(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  args.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  redisAppendCommandArgv(context_, static_cast<int>(argv.size()), args.data(), lengths.data());
}

Result<Reply> Connection::GetReply() {
  if (context_->err) return IoError("connection broken");
  void* raw = nullptr;
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) return IoError("read");
  return Reply(static_cast<redisReply*>(raw));
}

Result<Reply> Connection::Command(const std::vector<std::string>& argv) {
  Append(argv);
  return GetReply();
}

bool Connection::broken() const { return context_->err != 0; }

void Connection::ShutdownSocket() { ::shutdown(context_->fd, SHUT_RDWR); }

Status Connection::IoError(std::string_view what) const {
  std::string detail = context_->err ? std::string(context_->errstr) : "no reply";
  if (context_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    // A hung Redis (or network), told apart from a closed connection: callers do not
    // retry into another full timeout.
    return Status(StatusCode::kDeadlineExceeded,
                  "redis " + address_.ToString() + ": " + std::string(what) + ": timed out");
  }
  return Unavailable("redis " + address_.ToString() + ": " + std::string(what) + ": " + detail);
}

}  // namespace firebreak::redis
