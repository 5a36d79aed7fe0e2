"""mailbridge: an on-premises e-mail-to-SMS gateway speaking the SMSC e-mail grammar."""

__version__ = "0.1.0"
