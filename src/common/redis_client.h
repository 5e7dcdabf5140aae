// A thin RAII layer over hiredis' synchronous API: one connection, pipelined commands,
// errors as Status. hiredis ships no C++ or Asio adapter; a blocking connection owned by
// one thread is all the queue needs (it pipelines a whole batch per round trip).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct redisContext;
struct redisReply;

namespace firebreak::redis {

// Where a Redis server is, from redis://[[user]:password@]host[:port][/db].
struct Address {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;
  std::string password;

  std::string ToString() const;  // host:port/db, never the password
};

// kInvalidArgument naming `url` when it is not a redis:// URL.
Result<Address> ParseRedisUrl(std::string_view url);

struct ReplyDeleter {
  void operator()(redisReply* reply) const;
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// Views of a reply, safe on any reply type.
bool IsError(const redisReply* reply);
std::string ReplyString(const redisReply* reply);  // string/status/error text, integer as text
long long ReplyInteger(const redisReply* reply);  // integer, or a string holding one; else 0
size_t ReplyLength(const redisReply* reply);      // elements of an array, else 0
const redisReply* ReplyElement(const redisReply* reply, size_t i);  // nullptr out of range

class Connection {
 public:
  // Connects, authenticates and selects the database. `command_timeout` bounds every
  // read and write afterwards (zero: block). Errors are kUnavailable naming the address.
  static Result<std::unique_ptr<Connection>> Open(const Address& address,
                                                  std::chrono::milliseconds connect_timeout,
                                                  std::chrono::milliseconds command_timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Queues a command in the output buffer; GetReply sends everything queued and reads
  // the replies in order. A Redis error reply is a reply (check IsError), not a Status.
  // Errors: kDeadlineExceeded when command_timeout passed without an answer (the
  // connection is then broken), kUnavailable for other I/O failures.
  void Append(const std::vector<std::string>& argv);
  Result<Reply> GetReply();
  Result<Reply> Command(const std::vector<std::string>& argv);

  // Once an I/O error or timeout happened the connection cannot be used again.
  bool broken() const;
  // Unblocks a read waiting in another thread (used to stop a subscriber).
  void ShutdownSocket();
  const Address& address() const { return address_; }

 private:
  Connection(redisContext* context, Address address);
  Status IoError(std::string_view what) const;

  redisContext* context_;
  Address address_;
};

}  // namespace firebreak::redis
