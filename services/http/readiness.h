// Which --serve models are still being exported, compiled and loaded: /health answers 503 until
// none is, and a request for one of them gets 503 (retry) instead of 404 (no such model).
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace qeff::http {

class Readiness {
 public:
  explicit Readiness(std::vector<std::string> pending) : pending_(pending.begin(), pending.end()) {}

  void MarkLoaded(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    pending_.erase(id);
  }
  bool ready() const {
    std::lock_guard<std::mutex> l(mu_);
    return pending_.empty();
  }
  bool pending(const std::string& id) const {
    std::lock_guard<std::mutex> l(mu_);
    return pending_.count(id) > 0;
  }
  std::vector<std::string> pending_ids() const {
    std::lock_guard<std::mutex> l(mu_);
    return {pending_.begin(), pending_.end()};
  }

 private:
  mutable std::mutex mu_;
  std::set<std::string> pending_;
};

}  // namespace qeff::http
