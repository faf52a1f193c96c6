package org.iopcare.hapi;

import java.util.Arrays;

/**
 * Outside checks of the iopcare FHIR gateway with HAPI FHIR (run by tests/external through
 * tests/support/hapi.py).
 *
 * <pre>
 *   validate FILE_OR_DIR...        validates each JSON resource with HAPI's FhirInstanceValidator
 *   client BASE TOKEN PROGRAM_TOKEN TEMPLATE_DIR  drives the gateway with HAPI's generic REST client
 * </pre>
 *
 * Output is one tab-separated line per finding, so the Python side can assert on it.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: validate FILE_OR_DIR... | client BASE TOKEN PROGRAM_TOKEN TEMPLATE_DIR");
      System.exit(2);
    }
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    int status;
    switch (args[0]) {
      case "validate" -> status = Validate.run(rest);
      case "client" -> status = ClientCheck.run(rest);
      default -> {
        System.err.println("unknown command " + args[0]);
        status = 2;
      }
    }
    System.out.flush();
    System.exit(status);
  }
}
