// One registration function per architecture family (each defined in its own models/*.cc).
#pragma once

namespace qeff::exporter {

class ModelRegistry;

// Decoders are declarations over services/exporter/decoder_builder.h (docs/adding-a-model.md).
void RegisterGpt2(ModelRegistry& registry);   // GPT2LMHeadModel, GPTBigCodeForCausalLM
void RegisterLlama(ModelRegistry& registry);  // Llama, Mistral, Qwen2, Mixtral, Qwen2Moe ...ForCausalLM
void RegisterBert(ModelRegistry& registry);   // BERT-family encoders: Bert/Roberta/XLMRobertaModel, *ForSequenceClassification
void RegisterGemma(ModelRegistry& registry);   // GemmaForCausalLM, Gemma2ForCausalLM
void RegisterPhi3(ModelRegistry& registry);    // Phi3ForCausalLM, PhiForCausalLM
void RegisterGptj(ModelRegistry& registry);    // GPTJForCausalLM, CodeGenForCausalLM
void RegisterMpt(ModelRegistry& registry);     // MptForCausalLM
void RegisterStarcoder2(ModelRegistry& registry);  // Starcoder2ForCausalLM
void RegisterFalcon(ModelRegistry& registry);  // FalconForCausalLM

}  // namespace qeff::exporter
