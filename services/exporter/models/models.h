// One registration function per architecture family (each defined in its own models/*.cc).
#pragma once

namespace qeff::exporter {

class ModelRegistry;

void RegisterGpt2(ModelRegistry& registry);   // GPT2LMHeadModel
void RegisterLlama(ModelRegistry& registry);  // LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM

}  // namespace qeff::exporter
