#include "services/exporter/model_registry.h"

#include "services/exporter/models/models.h"

namespace qeff::exporter {

const ModelRegistry& ModelRegistry::Get() {
  // Explicit registration: static registrar objects in a static library would be dropped by
  // the linker when nothing references their translation unit.
  static const ModelRegistry* registry = [] {
    auto* r = new ModelRegistry;
    RegisterGpt2(*r);
    RegisterLlama(*r);
    RegisterBert(*r);
    RegisterGemma(*r);
    RegisterPhi3(*r);
    RegisterGptj(*r);
    RegisterFalcon(*r);
    RegisterMpt(*r);
    RegisterStarcoder2(*r);
    return r;
  }();
  return *registry;
}

void ModelRegistry::Register(const std::string& architecture, ArchBuilder builder) {
  builders_[architecture] = std::move(builder);
}

const ArchBuilder* ModelRegistry::Find(const std::string& architecture) const {
  auto it = builders_.find(architecture);
  return it == builders_.end() ? nullptr : &it->second;
}

std::vector<std::string> ModelRegistry::Architectures() const {
  std::vector<std::string> out;
  for (const auto& [name, b] : builders_) out.push_back(name);
  return out;
}

}  // namespace qeff::exporter
