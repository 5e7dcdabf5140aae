// A test double of IngressRequest whose header lookup ignores case, as the server's does.
#pragma once

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "ingress/source.h"

namespace firebreak::testing {

class FakeRequest final : public IngressRequest {
 public:
  explicit FakeRequest(std::string body = "", std::string method = "POST",
                       std::string target = "/hooks/test")
      : method_(std::move(method)), target_(std::move(target)), body_(std::move(body)) {}
  FakeRequest& SetHeader(std::string name, std::string value) {
    headers_[Lower(std::move(name))] = std::move(value);
    return *this;
  }
  FakeRequest& RemoveHeader(std::string name) {
    headers_.erase(Lower(std::move(name)));
    return *this;
  }
  std::string_view Method() const override { return method_; }
  std::string_view Target() const override { return target_; }
  std::string_view Header(std::string_view name) const override {
    auto it = headers_.find(Lower(std::string(name)));
    return it == headers_.end() ? std::string_view() : std::string_view(it->second);
  }
  void ForEachHeader(
      const std::function<void(std::string_view, std::string_view)>& visit) const override {
    for (const auto& [name, value] : headers_) visit(name, value);
  }
  std::string_view Body() const override { return body_; }

 private:
  static std::string Lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
  }
  std::string method_;
  std::string target_;
  std::string body_;
  std::map<std::string, std::string> headers_;
};

}  // namespace firebreak::testing
