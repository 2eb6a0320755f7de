package org.outpost.field.ui

import androidx.compose.runtime.Composable
import androidx.compose.runtime.CompositionLocalProvider
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.collectAsState
import androidx.navigation.compose.NavHost
import androidx.navigation.compose.composable
import androidx.navigation.compose.rememberNavController
import org.outpost.core.OutpostInterface
import org.outpost.field.shared.SessionModel

/** The app: enrol, unlock, then the field screens. */
@Composable
fun FieldApp(core: OutpostInterface, onRecordWritten: () -> Unit) {
    val session = remember { SessionModel(core) }
    val scope = rememberCoroutineScope()
    LaunchedEffect(Unit) { scope.io { session.refresh() } }
    val state by session.state.collectAsState()
    val status = state.status ?: return
    // Just enrolled: fetch the assignment as soon as there is a network.
    LaunchedEffect(status.enrolled) { if (status.enrolled) onRecordWritten() }
    CompositionLocalProvider(LocalFieldPlatform provides AndroidPlatform) {
        when {
            !status.enrolled -> EnrolScreen(session)
            !status.unlocked -> UnlockScreen(session)
            else -> FieldNavigation(core, onRecordWritten, onLock = { scope.io { session.lock() } })
        }
    }
}

@Composable
private fun FieldNavigation(core: OutpostInterface, onRecordWritten: () -> Unit, onLock: () -> Unit) {
    val nav = rememberNavController()
    // Never pop the first screen: two quick Backs would leave an empty one.
    val back: () -> Unit = { if (nav.previousBackStackEntry != null) nav.popBackStack() }
    val written: () -> Unit = {
        onRecordWritten()
        back()
    }
    NavHost(nav, startDestination = "search") {
        composable("search") {
            SearchScreen(
                core,
                open = { nav.navigate("beneficiary/$it") },
                goTo = { nav.navigate(it) },
                onLock = onLock,
            )
        }
        composable("beneficiary/{id}") { entry ->
            val id = entry.arguments?.getString("id").orEmpty()
            BeneficiaryScreen(core, id, back = back, goTo = { nav.navigate(it) })
        }
        composable("payout/{b}/{e}") { entry ->
            PayoutScreen(core, entry.arguments?.getString("b").orEmpty(), entry.arguments?.getString("e").orEmpty(), back, written)
        }
        composable("distribute/{b}/{e}") { entry ->
            DistributionScreen(core, entry.arguments?.getString("b").orEmpty(), entry.arguments?.getString("e").orEmpty(), back, written)
        }
        composable("timesheet/{b}") { entry ->
            TimesheetScreen(core, entry.arguments?.getString("b").orEmpty(), back, written)
        }
        composable("verify/{b}") { entry ->
            VerificationScreen(core, entry.arguments?.getString("b").orEmpty(), back, written)
        }
        composable("grievances") { GrievanceListScreen(core, back, open = { nav.navigate("grievance/$it") }, create = { nav.navigate("grievance-new/-") }) }
        composable("grievance-new/{b}") { entry ->
            val b = entry.arguments?.getString("b")?.takeIf { it != "-" }
            GrievanceNewScreen(core, b, back) { id ->
                onRecordWritten()
                nav.navigate("grievance/$id") { popUpTo("grievance-new/{b}") { inclusive = true } }
            }
        }
        composable("grievance/{id}") { entry ->
            GrievanceScreen(core, entry.arguments?.getString("id").orEmpty(), back, onRecordWritten)
        }
        composable("sync") { SyncScreen(core, back) }
        composable("summary") { SummaryScreen(core, back) }
    }
}

