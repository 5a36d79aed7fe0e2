"""Due SMS to providers, reply mail out."""
