// One registration function per architecture family (each defined in its own models/*.cc).
#pragma once

namespace qeff::exporter {

class ModelRegistry;

void RegisterGpt2(ModelRegistry& registry);   // GPT2LMHeadModel
void RegisterLlama(ModelRegistry& registry);  // LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM
void RegisterBert(ModelRegistry& registry);   // BertModel (encoder: embeddings)
void RegisterGemma2(ModelRegistry& registry);  // Gemma2ForCausalLM
void RegisterPhi3(ModelRegistry& registry);    // Phi3ForCausalLM
void RegisterGptj(ModelRegistry& registry);    // GPTJForCausalLM
void RegisterFalcon(ModelRegistry& registry);  // FalconForCausalLM

}  // namespace qeff::exporter
