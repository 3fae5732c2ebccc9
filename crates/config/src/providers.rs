//! Upstream PicoClaw's model references, read as upstream reads them: a `model_list`
//! entry's `model` may carry its provider as a prefix (`openai/gpt-5.4`,
//! `openrouter/meta-llama/llama-3`), or name it in `provider`; a missing `api_base` is
//! the provider's default. picoclaw speaks one wire protocol, OpenAI-compatible chat
//! completions, so only the providers upstream drives through that protocol are usable
//! here; the others are recognised (their prefix is stripped like upstream's) and named
//! in a clear error when a chat would need them.

/// A provider upstream knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// Upstream's canonical id, e.g. `openai`.
    pub id: &'static str,
    /// Other spellings upstream accepts.
    aliases: &'static [&'static str],
    /// Upstream's default API base (`None`: the entry must set one, or none applies).
    pub default_api_base: Option<&'static str>,
    /// True when upstream talks to it over OpenAI-compatible chat completions.
    pub openai_compatible: bool,
}

const fn compatible(id: &'static str, aliases: &'static [&'static str], base: &'static str) -> Provider {
    Provider { id, aliases, default_api_base: Some(base), openai_compatible: true }
}

const fn other(id: &'static str, aliases: &'static [&'static str]) -> Provider {
    Provider { id, aliases, default_api_base: None, openai_compatible: false }
}

/// Upstream's provider catalog (`pkg/providers/provider_metadata.go`, v0.3.x): ids,
/// aliases and default API bases.
pub const PROVIDERS: &[Provider] = &[
    compatible("openai", &["gpt"], "https://api.openai.com/v1"),
    compatible("deepseek", &[], "https://api.deepseek.com/v1"),
    compatible("openrouter", &[], "https://openrouter.ai/api/v1"),
    compatible("qwen-portal", &["qwen"], "https://dashscope.aliyuncs.com/compatible-mode/v1"),
    compatible(
        "qwen-intl",
        &["qwen-international", "dashscope-intl"],
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    ),
    compatible("qwen-us", &["dashscope-us"], "https://dashscope-us.aliyuncs.com/compatible-mode/v1"),
    compatible("moonshot", &[], "https://api.moonshot.cn/v1"),
    compatible("volcengine", &[], "https://ark.cn-beijing.volces.com/api/v3"),
    compatible("zhipu", &["glm"], "https://open.bigmodel.cn/api/paas/v4"),
    compatible("groq", &[], "https://api.groq.com/openai/v1"),
    compatible("mistral", &[], "https://api.mistral.ai/v1"),
    compatible("nvidia", &[], "https://integrate.api.nvidia.com/v1"),
    compatible("cerebras", &[], "https://api.cerebras.ai/v1"),
    compatible("ollama", &[], "http://localhost:11434/v1"),
    compatible("vllm", &[], "http://localhost:8000/v1"),
    compatible("lmstudio", &[], "http://localhost:1234/v1"),
    compatible("gpt4free", &["g4f"], "http://localhost:1337/v1"),
    compatible("venice", &[], "https://api.venice.ai/api/v1"),
    compatible("shengsuanyun", &[], "https://router.shengsuanyun.com/api/v1"),
    compatible("siliconflow", &[], "https://api.siliconflow.cn/v1"),
    compatible("vivgrid", &[], "https://api.vivgrid.com/v1"),
    compatible("longcat", &[], "https://api.longcat.chat/openai"),
    compatible("modelscope", &[], "https://api-inference.modelscope.cn/v1"),
    compatible("mimo", &[], "https://api.xiaomimimo.com/v1"),
    compatible("avian", &[], "https://api.avian.io/v1"),
    compatible("zai", &["z.ai", "z-ai"], "https://api.z.ai/api/coding/paas/v4"),
    compatible(
        "alibaba-coding",
        &["coding-plan", "qwen-coding"],
        "https://coding-intl.dashscope.aliyuncs.com/v1",
    ),
    compatible("novita", &[], "https://api.novita.ai/openai"),
    compatible("litellm", &[], "http://localhost:4000/v1"),
    other("anthropic", &["claude"]),
    other("anthropic-messages", &[]),
    other("alibaba-coding-anthropic", &["coding-plan-anthropic"]),
    other("gemini", &["google"]),
    other("azure", &["azure-openai"]),
    other("bedrock", &[]),
    other("github-copilot", &["copilot"]),
    other("antigravity", &["google-antigravity"]),
    other("claude-cli", &["claudecli"]),
    other("codex-cli", &["codexcli"]),
    other("minimax", &[]),
    other("elevenlabs", &[]),
];

/// The provider named `name` (an id or alias, any case, surrounding spaces ignored).
pub fn find(name: &str) -> Option<&'static Provider> {
    let name = name.trim().to_ascii_lowercase();
    PROVIDERS.iter().find(|p| p.id == name || p.aliases.contains(&name.as_str()))
}

/// How an entry's `model` (and optional `provider`) resolve, as upstream resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The provider: the `provider` field, else a known prefix of `model`, else `openai`.
    pub provider: &'static str,
    /// The model id sent to the API (`model` without a known provider prefix).
    pub model_id: String,
}

/// Why a `provider` field cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProvider(pub String);

/// Resolves `model` and `provider` the way upstream's `ExtractProtocol` does: an explicit
/// provider wins and the model is sent as written; otherwise a first path segment that
/// names a known provider is the provider and is stripped; anything else is an `openai`
/// model sent as written (`meta-llama/llama-3` stays whole).
pub fn resolve(model: &str, provider: Option<&str>) -> Result<ModelRef, UnknownProvider> {
    let model = model.trim();
    if let Some(p) = provider.map(str::trim).filter(|p| !p.is_empty()) {
        let found = find(p).ok_or_else(|| UnknownProvider(p.to_owned()))?;
        return Ok(ModelRef { provider: found.id, model_id: model.to_owned() });
    }
    if let Some((prefix, rest)) = model.split_once('/')
        && let Some(found) = find(prefix)
    {
        return Ok(ModelRef { provider: found.id, model_id: rest.trim().to_owned() });
    }
    Ok(ModelRef { provider: "openai", model_id: model.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(model: &str, provider: Option<&str>) -> (&'static str, String) {
        let m = resolve(model, provider).unwrap();
        (m.provider, m.model_id)
    }

    #[test]
    fn references_resolve_as_upstream_documents_them() {
        // The examples of upstream's ExtractProtocol.
        assert_eq!(r("openai/gpt-4o", None), ("openai", "gpt-4o".into()));
        assert_eq!(r("nvidia/z-ai/glm-5.1", None), ("nvidia", "z-ai/glm-5.1".into()));
        assert_eq!(r("z-ai/glm-5.1", Some("nvidia")), ("nvidia", "z-ai/glm-5.1".into()));
        assert_eq!(r("openai/gpt-4o", Some("openai")), ("openai", "openai/gpt-4o".into()));
        assert_eq!(r("gpt-4o", None), ("openai", "gpt-4o".into()));
        // Unknown prefixes stay part of the id; aliases and case are normalised.
        assert_eq!(r("meta-llama/llama-3", None), ("openai", "meta-llama/llama-3".into()));
        assert_eq!(r("Claude/opus", None), ("anthropic", "opus".into()));
        assert_eq!(r(" gpt-4o ", Some(" GPT ")), ("openai", "gpt-4o".into()));
        assert_eq!(resolve("x", Some("no-such")), Err(UnknownProvider("no-such".into())));
    }

    #[test]
    fn every_id_and_alias_is_unique_and_lowercase() {
        let mut names: Vec<&str> =
            PROVIDERS.iter().flat_map(|p| std::iter::once(p.id).chain(p.aliases.iter().copied())).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a name appears twice");
        assert!(names.iter().all(|n| *n == n.to_ascii_lowercase()));
        assert!(PROVIDERS.iter().all(|p| p.openai_compatible == p.default_api_base.is_some()));
    }
}
