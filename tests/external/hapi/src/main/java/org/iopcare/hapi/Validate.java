package org.iopcare.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * Validates JSON resources against the FHIR R4 core definitions bundled in
 * hapi-fhir-validation-resources-r4, offline.
 *
 * <p>Terminology: no terminology server is reachable, so code systems HAPI does not carry (SNOMED
 * CT, LOINC, ICD-10, RxNorm, ...) cannot be checked; UnknownCodeSystemWarningValidationSupport
 * makes a code from such a system a warning instead of an error. Code systems in the core package
 * (FHIR's own, terminology.hl7.org's v2/v3 ones bundled there) and those
 * CommonCodeSystemsTerminologyService knows (UCUM, BCP-47, ISO 3166, ISO 4217, mime types) are
 * checked for real.
 *
 * <p>Prints {@code ISSUE<TAB>file<TAB>severity<TAB>location<TAB>messageId<TAB>message} per issue
 * and {@code FILE<TAB>file<TAB>errors<TAB>warnings} per file; exits 1 if any file has an error.
 */
final class Validate {
  private Validate() {}

  static FhirValidator validator(FhirContext ctx) {
    UnknownCodeSystemWarningValidationSupport unknownSystems =
        new UnknownCodeSystemWarningValidationSupport(ctx);
    unknownSystems.setNonExistentCodeSystemSeverity(
        ca.uhn.fhir.context.support.IValidationSupport.IssueSeverity.WARNING);
    ValidationSupportChain chain =
        new ValidationSupportChain(
            new DefaultProfileValidationSupport(ctx),
            new CommonCodeSystemsTerminologyService(ctx),
            new InMemoryTerminologyServerValidationSupport(ctx),
            new SnapshotGeneratingValidationSupport(ctx),
            unknownSystems);
    FhirInstanceValidator module = new FhirInstanceValidator(chain);
    module.setAnyExtensionsAllowed(true);
    // A profile the validator does not have is a warning, not an error: the gateway claims US
    // Core 6.1 profiles (meta.profile), whose package cannot be had here (no packages.fhir.org,
    // not on the npm registry or Maven Central); test_hapi_validation.py requires every such
    // warning to name a US Core profile and checks those profiles' required and Must Support
    // elements itself (iopcare.gateway.uscore.PROFILES). docs/conformance.md.
    module.setErrorForUnknownProfiles(false);
    module.setBestPracticeWarningLevel(
        org.hl7.fhir.r5.utils.validation.constants.BestPracticeWarningLevel.Warning);
    FhirValidator validator = ctx.newValidator();
    validator.registerValidatorModule(module);
    return validator;
  }

  static int run(String[] args) throws Exception {
    FhirContext ctx = FhirContext.forR4();
    FhirValidator validator = validator(ctx);
    List<Path> files = new ArrayList<>();
    for (String arg : args) {
      Path path = Path.of(arg);
      if (Files.isDirectory(path)) {
        try (Stream<Path> found = Files.walk(path)) {
          found.filter(p -> p.toString().endsWith(".json")).sorted().forEach(files::add);
        }
      } else {
        files.add(path);
      }
    }
    int failed = 0;
    for (Path file : files) {
      String text = Files.readString(file, StandardCharsets.UTF_8);
      ValidationResult result = validator.validateWithResult(text);
      int errors = 0;
      int warnings = 0;
      for (SingleValidationMessage message : result.getMessages()) {
        ResultSeverityEnum severity = message.getSeverity();
        if (severity == ResultSeverityEnum.ERROR || severity == ResultSeverityEnum.FATAL) {
          errors++;
        } else if (severity == ResultSeverityEnum.WARNING) {
          warnings++;
        }
        System.out.println(
            String.join(
                "\t",
                "ISSUE",
                file.getFileName().toString(),
                severity.getCode(),
                String.valueOf(message.getLocationString()),
                String.valueOf(message.getMessageId()),
                oneLine(message.getMessage())));
      }
      if (errors > 0) {
        failed++;
      }
      System.out.println(
          String.join(
              "\t",
              "FILE",
              file.getFileName().toString(),
              Integer.toString(errors),
              Integer.toString(warnings)));
    }
    System.out.println("SUMMARY\t" + files.size() + "\t" + failed);
    return failed == 0 ? 0 : 1;
  }

  static String oneLine(String text) {
    return text == null ? "" : text.replace('\t', ' ').replace('\n', ' ').replace('\r', ' ');
  }
}
