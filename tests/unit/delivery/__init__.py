"""Tests of the delivery side: dispatcher, outcomes, ownership, lanes, clocks, mailer, events."""
