"""Who may call: API keys, authentication and permissions, encryption-key rotation."""
