"""aiosmtpd as the shell: listeners, session overrides, the thin handler."""
