package org.iopcare.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.StrictErrorHandler;
import ca.uhn.fhir.rest.api.MethodOutcome;
import ca.uhn.fhir.rest.client.api.IGenericClient;
import ca.uhn.fhir.rest.client.api.ServerValidationModeEnum;
import ca.uhn.fhir.rest.client.interceptor.BearerTokenAuthInterceptor;
import ca.uhn.fhir.rest.server.exceptions.AuthenticationException;
import ca.uhn.fhir.rest.server.exceptions.BaseServerResponseException;
import ca.uhn.fhir.rest.server.exceptions.InvalidRequestException;
import ca.uhn.fhir.rest.server.exceptions.PreconditionFailedException;
import ca.uhn.fhir.rest.server.exceptions.ResourceNotFoundException;
import ca.uhn.fhir.rest.server.exceptions.UnprocessableEntityException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import org.hl7.fhir.instance.model.api.IBaseOperationOutcome;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.CapabilityStatement;
import org.hl7.fhir.r4.model.CarePlan;
import org.hl7.fhir.r4.model.CareTeam;
import org.hl7.fhir.r4.model.Enumerations;
import org.hl7.fhir.r4.model.IdType;
import org.hl7.fhir.r4.model.OperationOutcome;
import org.hl7.fhir.r4.model.Patient;

/**
 * Drives the gateway with HAPI FHIR's generic client, as a Java EHR integration would. Every check
 * prints {@code CHECK<TAB>name<TAB>ok|fail<TAB>detail}; a failed check does not stop the others.
 * The client's parser is strict: an unknown element or a malformed value in any response is an
 * error, not a logged warning.
 */
final class ClientCheck {
  static final String MRN = "urn:oid:2.16.840.1.113883.3.72.5.20";

  private final FhirContext ctx;
  private final IGenericClient client;
  private final IGenericClient programClient;
  private final String base;
  private final Path templates;
  private int failures;

  // State passed from check to check.
  private String mrn;
  private IdType patientId;
  private String teamId;
  private final List<String> planIds = new ArrayList<>();

  private ClientCheck(String base, String token, String programToken, Path templates) {
    this.ctx = FhirContext.forR4();
    this.ctx.setParserErrorHandler(new StrictErrorHandler());
    this.ctx.getRestfulClientFactory().setServerValidationMode(ServerValidationModeEnum.ONCE);
    this.ctx.getRestfulClientFactory().setSocketTimeout(60_000);
    this.base = base;
    this.client = ctx.newRestfulGenericClient(base);
    this.client.registerInterceptor(new BearerTokenAuthInterceptor(token));
    // The program's own administrator: a care team is enrolled by the program, never by an
    // outside EHR, so the team is created with this token and used by the EHR afterwards.
    this.programClient = ctx.newRestfulGenericClient(base);
    this.programClient.registerInterceptor(new BearerTokenAuthInterceptor(programToken));
    this.templates = templates;
  }

  static int run(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: client BASE TOKEN PROGRAM_TOKEN TEMPLATE_DIR");
      return 2;
    }
    ClientCheck check = new ClientCheck(args[0], args[1], args[2], Path.of(args[3]));
    check.all();
    System.out.println("SUMMARY\t" + check.failures);
    return check.failures == 0 ? 0 : 1;
  }

  interface Step {
    String run() throws Exception;
  }

  private void check(String name, Step step) {
    try {
      String detail = step.run();
      System.out.println("CHECK\t" + name + "\tok\t" + Validate.oneLine(detail));
    } catch (Throwable e) {
      failures++;
      String detail = e.getClass().getSimpleName() + ": " + e.getMessage();
      if (e instanceof BaseServerResponseException server) {
        detail += " body=" + server.getResponseBody();
      }
      System.out.println("CHECK\t" + name + "\tfail\t" + Validate.oneLine(detail));
    }
  }

  private static void expect(boolean condition, String what) {
    if (!condition) {
      throw new AssertionError(what);
    }
  }

  private String template(String name) throws Exception {
    String text = Files.readString(templates.resolve(name), StandardCharsets.UTF_8);
    text = text.replace("PATIENT_ID", patientId == null ? "" : patientId.getIdPart());
    return text.replace("TEAM_ID", teamId == null ? "" : teamId);
  }

  private static String outcomeText(IBaseOperationOutcome outcome) {
    expect(outcome instanceof OperationOutcome, "an OperationOutcome was parsed from the error");
    OperationOutcome oo = (OperationOutcome) outcome;
    expect(!oo.getIssue().isEmpty(), "the OperationOutcome has an issue");
    OperationOutcome.OperationOutcomeIssueComponent issue = oo.getIssue().get(0);
    expect(issue.getSeverity() != null, "the issue has a severity");
    expect(issue.getCode() != null, "the issue has a code");
    return issue.getSeverity().toCode()
        + "/"
        + issue.getCode().toCode()
        + ": "
        + issue.getDiagnostics();
  }

  private Patient newPatient(String value) {
    Patient patient = new Patient();
    patient.addIdentifier().setSystem(MRN).setValue(value);
    patient.addName().setFamily("Nakamura").addGiven("Rei");
    patient.setGender(Enumerations.AdministrativeGender.FEMALE);
    return patient;
  }

  private void all() {
    check(
        "capabilities",
        () -> {
          CapabilityStatement cs =
              client.capabilities().ofType(CapabilityStatement.class).execute();
          expect(cs.getFhirVersion() == Enumerations.FHIRVersion._4_0_1, "fhirVersion 4.0.1");
          expect(!cs.getRest().isEmpty(), "a rest entry");
          List<String> types = new ArrayList<>();
          cs.getRestFirstRep().getResource().forEach(r -> types.add(r.getType()));
          expect(types.contains("Patient") && types.contains("CarePlan"), "Patient and CarePlan");
          return "fhirVersion=" + cs.getFhirVersion().toCode() + " types=" + types;
        });
    check(
        "create-patient",
        () -> {
          mrn = UUID.randomUUID().toString();
          MethodOutcome outcome = client.create().resource(newPatient(mrn)).execute();
          expect(Boolean.TRUE.equals(outcome.getCreated()), "201 Created");
          IdType id = (IdType) outcome.getId();
          expect(id.hasIdPart(), "Location has the id");
          expect("1".equals(id.getVersionIdPart()), "Location has version 1: " + id);
          patientId = id.toUnqualifiedVersionless();
          return "id=" + id.getValue();
        });
    check(
        "read-patient",
        () -> {
          Patient read = client.read().resource(Patient.class).withId(patientId).execute();
          expect(read.getIdElement().getIdPart().equals(patientId.getIdPart()), "same id");
          expect("1".equals(read.getMeta().getVersionId()), "meta.versionId 1");
          expect(mrn.equals(read.getIdentifierFirstRep().getValue()), "identifier kept");
          expect(read.getGender() == Enumerations.AdministrativeGender.FEMALE, "gender kept");
          return "version=" + read.getIdElement().getVersionIdPart();
        });
    check(
        "search-patient-by-identifier",
        () -> {
          Bundle found =
              client
                  .search()
                  .forResource(Patient.class)
                  .where(Patient.IDENTIFIER.exactly().systemAndCode(MRN, mrn))
                  .returnBundle(Bundle.class)
                  .execute();
          expect(found.getType() == Bundle.BundleType.SEARCHSET, "a searchset");
          expect(found.getEntry().size() == 1, "one match, got " + found.getEntry().size());
          Patient match = (Patient) found.getEntryFirstRep().getResource();
          expect(match.getIdElement().getIdPart().equals(patientId.getIdPart()), "the patient");
          expect(found.getEntryFirstRep().getFullUrl().startsWith(base), "absolute fullUrl");
          return "total=" + found.getTotal();
        });
    check(
        "create-care-team",
        () -> {
          CareTeam team =
              ctx.newJsonParser().parseResource(CareTeam.class, template("care_team.json"));
          MethodOutcome outcome = programClient.create().resource(team).execute();
          expect(Boolean.TRUE.equals(outcome.getCreated()), "201 Created");
          teamId = outcome.getId().getIdPart();
          return "id=" + teamId;
        });
    check(
        "care-plan-search-paging",
        () -> {
          IParser parser = ctx.newJsonParser();
          for (String title : new String[] {"first", "second", "third"}) {
            CarePlan plan = parser.parseResource(CarePlan.class, template("care_plan.json"));
            plan.setStatus(CarePlan.CarePlanStatus.DRAFT);
            plan.setTitle(title);
            MethodOutcome outcome = client.create().resource(plan).execute();
            planIds.add(outcome.getId().getIdPart());
          }
          Bundle page =
              client
                  .search()
                  .forResource(CarePlan.class)
                  .where(CarePlan.PATIENT.hasId(patientId.getIdPart()))
                  .count(2)
                  .returnBundle(Bundle.class)
                  .execute();
          Set<String> seen = new LinkedHashSet<>();
          int pages = 0;
          while (true) {
            pages++;
            expect(page.getEntry().size() <= 2, "at most _count entries a page");
            page.getEntry().forEach(e -> seen.add(e.getResource().getIdElement().getIdPart()));
            if (page.getLink(Bundle.LINK_NEXT) == null) {
              break;
            }
            expect(pages < 5, "paging ends");
            page = client.loadPage().next(page).execute();
          }
          expect(pages == 2, "two pages, got " + pages);
          expect(seen.equals(new LinkedHashSet<>(planIds)), "every plan once: " + seen);
          return "pages=" + pages + " plans=" + seen.size();
        });
    check(
        "transaction",
        () -> {
          Bundle tx = new Bundle();
          tx.setType(Bundle.BundleType.TRANSACTION);
          String other = UUID.randomUUID().toString();
          tx.addEntry()
              .setFullUrl("urn:uuid:" + UUID.randomUUID())
              .setResource(newPatient(other))
              .getRequest()
              .setMethod(Bundle.HTTPVerb.POST)
              .setUrl("Patient")
              .setIfNoneExist("identifier=" + MRN + "|" + other);
          tx.addEntry()
              .getRequest()
              .setMethod(Bundle.HTTPVerb.GET)
              .setUrl("Patient/" + patientId.getIdPart());
          Bundle response = client.transaction().withBundle(tx).execute();
          expect(response.getType() == Bundle.BundleType.TRANSACTIONRESPONSE, "a response");
          expect(response.getEntry().size() == 2, "two entries");
          String created = response.getEntry().get(0).getResponse().getStatus();
          String read = response.getEntry().get(1).getResponse().getStatus();
          expect(created.startsWith("201"), "the create is 201: " + created);
          expect(read.startsWith("200"), "the read is 200: " + read);
          return "statuses=" + created + "," + read;
        });
    check(
        "conditional-create",
        () -> {
          MethodOutcome outcome =
              client
                  .create()
                  .resource(newPatient(mrn))
                  .conditional()
                  .where(Patient.IDENTIFIER.exactly().systemAndCode(MRN, mrn))
                  .execute();
          expect(!Boolean.TRUE.equals(outcome.getCreated()), "not created again");
          expect(
              outcome.getId().getIdPart().equals(patientId.getIdPart()),
              "the known patient: " + outcome.getId());
          return "id=" + outcome.getId().getValue();
        });
    check(
        "update-and-stale-if-match",
        () -> {
          String planId = planIds.get(0);
          CarePlan plan = client.read().resource(CarePlan.class).withId(planId).execute();
          expect("1".equals(plan.getIdElement().getVersionIdPart()), "version 1");
          plan.setTitle("first, revised");
          MethodOutcome updated =
              client
                  .update()
                  .resource(plan)
                  .withId(plan.getIdElement().toUnqualified())
                  .execute();
          expect("2".equals(updated.getId().getVersionIdPart()), "version 2: " + updated.getId());
          try {
            // Based on version 1 again: the client sends If-Match: W/"1".
            client
                .update()
                .resource(plan)
                .withId(new IdType("CarePlan", planId, "1"))
                .withAdditionalHeader("If-Match", "W/\"1\"")
                .execute();
          } catch (PreconditionFailedException e) {
            return "412 " + outcomeText(e.getOperationOutcome());
          }
          throw new AssertionError("a stale If-Match was accepted");
        });
    check(
        "vread-history-include-everything",
        () -> {
          String planId = planIds.get(0);
          CarePlan first =
              client.read().resource(CarePlan.class).withIdAndVersion(planId, "1").execute();
          expect("first".equals(first.getTitle()), "version 1 as it was: " + first.getTitle());
          Bundle history =
              client
                  .history()
                  .onInstance(new IdType("CarePlan", planId))
                  .returnBundle(Bundle.class)
                  .execute();
          expect(history.getType() == Bundle.BundleType.HISTORY, "a history");
          expect(history.getEntry().size() == 2, "two versions: " + history.getEntry().size());
          for (Bundle.BundleEntryComponent e : history.getEntry()) {
            expect(e.getRequest().hasMethod() && e.getResponse().hasStatus(), "request, response");
          }
          Bundle withPatient =
              client
                  .search()
                  .forResource(CarePlan.class)
                  .where(CarePlan.PATIENT.hasId(patientId.getIdPart()))
                  .include(CarePlan.INCLUDE_SUBJECT)
                  .returnBundle(Bundle.class)
                  .execute();
          long included =
              withPatient.getEntry().stream()
                  .filter(e -> e.getSearch().getMode() == Bundle.SearchEntryMode.INCLUDE)
                  .count();
          expect(included == 1, "the patient included once: " + included);
          Bundle everything =
              client
                  .operation()
                  .onInstance(patientId)
                  .named("$everything")
                  .withNoParameters(org.hl7.fhir.r4.model.Parameters.class)
                  .useHttpGet()
                  .returnResourceType(Bundle.class)
                  .execute();
          Set<String> types = new LinkedHashSet<>();
          everything.getEntry().forEach(e -> types.add(e.getResource().fhirType()));
          expect(types.containsAll(List.of("Patient", "CareTeam", "CarePlan")), "" + types);
          return "history=" + history.getEntry().size() + " everything=" + types;
        });
    check(
        "not-found-outcome",
        () -> {
          try {
            client.read().resource(Patient.class).withId("no-such-patient").execute();
          } catch (ResourceNotFoundException e) {
            return "404 " + outcomeText(e.getOperationOutcome());
          }
          throw new AssertionError("an unknown patient was found");
        });
    check(
        "unprocessable-outcome",
        () -> {
          CarePlan plan = new CarePlan();
          plan.setStatus(CarePlan.CarePlanStatus.DRAFT);
          plan.setIntent(CarePlan.CarePlanIntent.PLAN);
          // no subject: the plan is nobody's
          try {
            client.create().resource(plan).execute();
          } catch (UnprocessableEntityException | InvalidRequestException e) {
            return e.getStatusCode() + " " + outcomeText(e.getOperationOutcome());
          }
          throw new AssertionError("a plan without a subject was created");
        });
    check(
        "unauthenticated-outcome",
        () -> {
          IGenericClient anonymous = ctx.newRestfulGenericClient(base);
          try {
            anonymous.read().resource(Patient.class).withId(patientId.getIdPart()).execute();
          } catch (AuthenticationException e) {
            return "401 " + outcomeText(e.getOperationOutcome());
          }
          throw new AssertionError("a read without a token was answered");
        });
  }
}
