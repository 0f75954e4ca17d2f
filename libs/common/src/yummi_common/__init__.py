"""What Yummi's services share: settings, logging, unit of work, gRPC plumbing, outbox and consumers."""
