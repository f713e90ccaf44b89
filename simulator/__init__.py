"""An OpenAI-compatible chat API simulator: the embedded default provider, and the test target."""
