// The IngressRequest a source sees of a Beast request: the server's view, and the
// benchmarks' (so they measure what the server runs).
#pragma once

#include <functional>
#include <string_view>

#include "ingress/source.h"
#include "net/http_server.h"

namespace firebreak {

class BeastRequestView final : public IngressRequest {
 public:
  explicit BeastRequestView(const net::Request& req) : req_(req) {}
  std::string_view Method() const override { return std::string_view(req_.method_string()); }
  std::string_view Target() const override { return std::string_view(req_.target()); }
  std::string_view Header(std::string_view name) const override {
    auto it = req_.find(name);
    return it == req_.end() ? std::string_view() : std::string_view(it->value());
  }
  void ForEachHeader(
      const std::function<void(std::string_view, std::string_view)>& visit) const override {
    for (const auto& field : req_) visit(field.name_string(), field.value());
  }
  std::string_view Body() const override { return req_.body(); }

 private:
  const net::Request& req_;
};

}  // namespace firebreak
