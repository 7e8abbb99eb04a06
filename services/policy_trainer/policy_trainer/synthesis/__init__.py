"""Question-answer synthesis from radiology reports, grounded in their knowledge graphs."""
