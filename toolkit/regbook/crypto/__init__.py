"""Keys and signatures: Ed25519 OpenSSH keys, the allowed_signers keyring, SSHSIG
signatures (``keys``), and checking many of them at once (``sigbatch``).
"""
