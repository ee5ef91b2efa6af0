"""Language models: an OpenAI-compatible chat client and the writers built on it.

Other domains use two things (see ``docs/llm.md``):

* ``llm_service.complete(messages)`` / ``llm_service.complete_json(messages, Model)``:
  one chat completion from the configured endpoint (``OUTREACH_LLM_BASE_URL``,
  ``OUTREACH_LLM_MODEL``, ``OUTREACH_LLM_API_KEY``), with retries and token usage
  logged; raises :class:`~outreach.llm.client.LLMError` when none is configured or
  it fails.
* ``llm_service.writer()``: a :class:`~outreach.llm.writer.Writer`, the LLM one when
  configured and the deterministic built-in one otherwise. ``writer.name`` is
  ``"built-in"`` or ``"llm:<model>"``; responses show it so users know who wrote what.
"""
