from tests.fakes.openai import fake_openai, fake_openai_server  # noqa: F401 - fixtures
